//! The `Accept` header's media ranges with their quality (RFC 9110 §12.5.1): enough to pick
//! among the few types the server speaks. A type's quality is that of the most specific
//! range matching it (`application/json` over `application/*` over `*/*`); `q=0` means "not
//! acceptable"; a range whose `q` is not a number from 0 to 1 is ignored.

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaRange {
    /// `type/subtype`, lower-cased; either part may be `*`.
    media: String,
    /// Quality in thousandths (0–1000), so comparisons are exact.
    quality: u16,
    /// Position in the header, for breaking ties in the client's order.
    position: usize,
}

/// How acceptable one media type is: its quality and the position of the range that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceptability {
    pub quality: u16,
    pub position: usize,
}

impl Acceptability {
    /// Whether `self` is preferred to `other`: higher quality, then earlier in the header.
    /// Equal when both come from the same range (e.g. one `*/*`).
    pub fn beats(self, other: Option<Acceptability>) -> bool {
        match other {
            None => self.quality > 0,
            Some(other) => {
                self.quality > other.quality
                    || (self.quality == other.quality && self.position < other.position)
            }
        }
    }
}

/// The parsed media ranges of one `Accept` header value.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    ranges: Vec<MediaRange>,
}

impl Accept {
    pub fn parse(header: &str) -> Self {
        let ranges = header
            .split(',')
            .enumerate()
            .filter_map(|(position, item)| {
                let mut parts = item.split(';');
                let media = parts.next()?.trim().to_ascii_lowercase();
                if media.split('/').count() != 2 {
                    return None;
                }
                let mut quality = 1000;
                for parameter in parts {
                    let Some((name, value)) = parameter.split_once('=') else {
                        continue;
                    };
                    if name.trim().eq_ignore_ascii_case("q") {
                        quality = parse_quality(value.trim())?;
                        // Parameters after `q` are accept-extensions: not part of the range.
                        break;
                    }
                }
                Some(MediaRange {
                    media,
                    quality,
                    position,
                })
            })
            .collect();
        Self { ranges }
    }

    /// How acceptable `media` (a lower-case `type/subtype`) is, from the most specific range
    /// matching it; `None` when no range names it (it is then not acceptable either).
    /// With `wildcards` false only a range naming `media` exactly counts.
    pub fn acceptability(&self, media: &str, wildcards: bool) -> Option<Acceptability> {
        let (kind, _) = media.split_once('/')?;
        let specificity = |range: &MediaRange| -> Option<u8> {
            if range.media == media {
                Some(2)
            } else if !wildcards {
                None
            } else if range.media.strip_suffix("/*") == Some(kind) {
                Some(1)
            } else if range.media == "*/*" {
                Some(0)
            } else {
                None
            }
        };
        self.ranges
            .iter()
            .filter_map(|range| Some((specificity(range)?, range)))
            // The most specific range; among equally specific ones the first.
            .min_by_key(|(specificity, range)| (u8::MAX - specificity, range.position))
            .map(|(_, range)| Acceptability {
                quality: range.quality,
                position: range.position,
            })
            .filter(|a| a.quality > 0)
    }
}

/// `0`, `0.5`, `1.000`: at most three decimals, between 0 and 1.
fn parse_quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(header: &str, media: &str) -> Option<u16> {
        Accept::parse(header)
            .acceptability(media, true)
            .map(|a| a.quality)
    }

    #[test]
    fn qualities_are_read_in_thousandths() {
        assert_eq!(parse_quality("1"), Some(1000));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("0.5"), Some(500));
        assert_eq!(parse_quality("0.05"), Some(50));
        assert_eq!(parse_quality("0.001"), Some(1));
        assert_eq!(parse_quality("0"), Some(0));
        assert_eq!(parse_quality("0."), Some(0));
        for bad in ["1.5", "2", "-1", "0.0001", "x", "", ".5", "0.5x"] {
            assert_eq!(parse_quality(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_most_specific_range_decides() {
        let header = "*/*;q=0.1, application/*;q=0.5, application/json;q=0.9";
        assert_eq!(quality(header, "application/json"), Some(900));
        assert_eq!(
            quality(header, "application/graphql-response+json"),
            Some(500)
        );
        assert_eq!(quality(header, "text/html"), Some(100));
        // q=0 on the exact type refuses it whatever the wildcards say.
        assert_eq!(
            quality("application/json;q=0, */*", "application/json"),
            None
        );
        assert_eq!(quality("text/html", "application/json"), None);
    }

    #[test]
    fn parameters_case_and_spaces_are_tolerated() {
        let header = "Application/JSON ; charset=utf-8 ; Q=0.7 ; ext=1";
        assert_eq!(quality(header, "application/json"), Some(700));
        // An invalid q drops the range rather than guessing.
        assert_eq!(quality("application/json;q=high", "application/json"), None);
        assert_eq!(quality("", "application/json"), None);
        assert_eq!(quality("garbage, ,;", "application/json"), None);
    }

    #[test]
    fn ties_go_to_the_earlier_range() {
        let accept = Accept::parse("text/html, application/json");
        let html = accept.acceptability("text/html", false);
        let json = accept.acceptability("application/json", true);
        assert!(html.is_some_and(|h| h.beats(json)));
        assert!(json.is_some_and(|j| !j.beats(html)));
        // Without wildcards `*/*` does not count.
        assert_eq!(Accept::parse("*/*").acceptability("text/html", false), None);
    }
}
