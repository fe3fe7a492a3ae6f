DROP TABLE messages;
DROP TABLE members;
DROP TABLE chats;
DROP TABLE users;
