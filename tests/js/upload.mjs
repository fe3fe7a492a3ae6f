#!/usr/bin/env node
// Attachments from a frontend's own stack: Apollo Client 4 with apollo-upload-client's
// UploadHttpLink (the GraphQL multipart request spec), Files as a browser has them.
//
//   node tests/js/upload.mjs <http-url> <alice-token> <bob-token> <chat-id>
//
// Alice and Bob are members of the chat.
// 1. Alice uploads a PNG and a PDF (File objects in the variables), sends them in one
//    message; Bob reads the message, waits for the thumbnail, loads it and the PDF by
//    their URLs with a plain fetch (as <img src> and a download link would).
// 2. A PDF passed off as a PNG is refused with UNSUPPORTED_MEDIA_TYPE.
// Exit 0 with "upload: ok" on success, 1 on any failure (with the reason), 2 on usage errors.

import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';

const [httpUrl, aliceToken, bobToken, chatId] = process.argv.slice(2);
if (!chatId) {
  console.error('usage: node upload.mjs <http-url> <alice-token> <bob-token> <chat-id>');
  process.exit(2);
}
const deadline = setTimeout(() => fail('timed out after 30 s'), 30_000);

function fail(reason) {
  console.error(`upload: FAIL: ${reason}`);
  process.exit(1);
}

function check(condition, what) {
  if (!condition) fail(what);
}

function client(token) {
  return new ApolloClient({
    link: new UploadHttpLink({ uri: httpUrl, headers: { authorization: `Bearer ${token}` } }),
    cache: new InMemoryCache(),
  });
}

// A 1×1 PNG with transparency, and a small PDF.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

const UPLOAD = gql`
  mutation Upload($chat: ID!, $file: Upload!) {
    uploadAttachment(chatId: $chat, file: $file) { id name mimeType size width height }
  }
`;
const SEND = gql`
  mutation Send($chat: ID!, $files: [ID!]) {
    sendMessage(input: { chatId: $chat, content: "pictures and papers", attachmentIds: $files }) { id }
  }
`;
const READ = gql`
  query Read($id: ID!) {
    message(id: $id) { id attachments { id name mimeType size url thumbnailUrl } }
  }
`;

const alice = client(aliceToken);
const bob = client(bobToken);

const picture = await alice.mutate({
  mutation: UPLOAD,
  variables: { chat: chatId, file: new File([PNG], 'dot.png', { type: 'image/png' }) },
});
const image = picture.data.uploadAttachment;
check(image.mimeType === 'image/png' && image.width === 1 && image.size === PNG.length,
  `png upload: ${JSON.stringify(image)}`);
const paper = await alice.mutate({
  mutation: UPLOAD,
  variables: { chat: chatId, file: new File([PDF], 'paper.pdf', { type: 'application/pdf' }) },
});
const document = paper.data.uploadAttachment;
check(document.mimeType === 'application/pdf', `pdf upload: ${JSON.stringify(document)}`);
const sent = await alice.mutate({ mutation: SEND, variables: { chat: chatId, files: [image.id, document.id] } });
const messageId = sent.data.sendMessage.id;

let seen;
for (let attempt = 0; attempt < 200; attempt++) {
  const read = await bob.query({ query: READ, variables: { id: messageId }, fetchPolicy: 'network-only' });
  seen = read.data.message.attachments;
  if (seen[0]?.thumbnailUrl) break;
  await new Promise((resolve) => setTimeout(resolve, 50));
}
check(seen.length === 2 && seen[0].name === 'dot.png' && seen[1].name === 'paper.pdf',
  `bob sees ${JSON.stringify(seen)}`);
check(seen[0].thumbnailUrl, 'no thumbnail within 10 s');
const thumbnail = await fetch(new URL(seen[0].thumbnailUrl, httpUrl));
check(thumbnail.status === 200 && thumbnail.headers.get('content-type') === 'image/png',
  `thumbnail: ${thumbnail.status} ${thumbnail.headers.get('content-type')}`);
const download = await fetch(new URL(seen[1].url, httpUrl));
const bytes = Buffer.from(await download.arrayBuffer());
check(download.status === 200 && bytes.equals(PDF), `pdf download: ${download.status}, ${bytes.length} bytes`);
check(download.headers.get('content-disposition')?.startsWith('attachment;'),
  `pdf disposition: ${download.headers.get('content-disposition')}`);
console.log('upload and download: ok');

try {
  await alice.mutate({
    mutation: UPLOAD,
    variables: { chat: chatId, file: new File([PDF], 'cat.png', { type: 'image/png' }) },
  });
  fail('a PDF sent as a PNG was accepted');
} catch (error) {
  const told = JSON.stringify(error) + String(error?.message) + String(error?.bodyText ?? '');
  check(told.includes('UNSUPPORTED_MEDIA_TYPE') || told.includes('application/pdf'),
    `spoofed type refused without its code: ${told}`);
}
console.log('spoofed type refused: ok');

clearTimeout(deadline);
console.log('upload: ok');
