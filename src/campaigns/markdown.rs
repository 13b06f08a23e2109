//! Campaign texts are Markdown (CommonMark). This module turns them into
//! what a recipient reads: [`to_html`] for the HTML part of a mail and the
//! advisory page, sanitised by an allow-list, and [`to_plain_text`] for the
//! text part, from the same parse. Titles are plain text: [`escape_html`].
//!
//! The HTML is conservative because it goes to thousands of mailboxes
//! under the centre's name: no images (a remote image is a read receipt and
//! a tracking pixel; its alt text is kept), no raw HTML beyond the tags
//! Markdown itself makes, links only to `http`, `https` and `mailto` and
//! with `rel="noopener noreferrer"`.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// Link schemes kept, in HTML and in plain text.
const URL_SCHEMES: [&str; 3] = ["http", "https", "mailto"];

static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let tags: HashSet<&str> = [
        "a",
        "blockquote",
        "br",
        "code",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "strong",
        "ul",
    ]
    .into_iter()
    .collect();
    let attributes: HashMap<&str, HashSet<&str>> = [
        ("a", ["href"].into_iter().collect()),
        ("ol", ["start"].into_iter().collect()),
    ]
    .into_iter()
    .collect();
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(tags)
        .tag_attributes(attributes)
        .clean_content_tags(["script", "style"].into_iter().collect())
        .url_schemes(URL_SCHEMES.into_iter().collect())
        // A relative link means nothing in a mail.
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .strip_comments(true);
    builder
});

fn parse(md: &str) -> impl Iterator<Item = Event<'_>> {
    // CommonMark only: no tables, footnotes or task lists to render. An
    // image keeps only its alt text (the events between its start and end).
    Parser::new_ext(md, Options::empty()).filter(|event| {
        !matches!(
            event,
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image)
        )
    })
}

/// Markdown as sanitised HTML.
pub fn to_html(md: &str) -> String {
    let mut html = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, parse(md));
    SANITIZER.clean(&html).to_string()
}

/// Plain text, HTML-escaped: for a title inside HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn allowed_url(url: &str) -> bool {
    url.split_once(':').is_some_and(|(scheme, _)| {
        URL_SCHEMES
            .iter()
            .any(|allowed| scheme.eq_ignore_ascii_case(allowed))
    })
}

/// Markdown as plain text for the text part of a mail: emphasis markers
/// dropped, list items as `1. ` / `- ` lines (nested ones indented), code
/// as it is, links as `text <url>`, blocks separated by blank lines, the
/// author's line breaks kept. Raw HTML is left out.
pub fn to_plain_text(md: &str) -> String {
    let mut w = PlainWriter::default();
    for event in parse(md) {
        w.event(event);
    }
    w.finish()
}

#[derive(Default)]
struct PlainWriter {
    out: String,
    /// Open lists: the next number of an ordered one, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Indentation of continuation lines inside the open list items.
    indent: Vec<usize>,
    quote_depth: usize,
    /// Open links: the target and where their text starts in `out`.
    links: Vec<(String, usize)>,
    at_line_start: bool,
    /// A blank line goes before the next block.
    blank_pending: bool,
    /// The item marker was just written: its first block goes on its line.
    after_marker: bool,
}

impl PlainWriter {
    fn prefix(&self) -> String {
        let mut p = "> ".repeat(self.quote_depth);
        p.push_str(&" ".repeat(self.indent.iter().sum()));
        p
    }

    fn end_line(&mut self) {
        if !self.out.is_empty() && !self.at_line_start {
            self.out.push('\n');
            self.at_line_start = true;
        }
    }

    /// Before a block: on a fresh line, after a blank one where due.
    fn start_block(&mut self) {
        if self.after_marker {
            self.after_marker = false;
            return;
        }
        self.end_line();
        if self.blank_pending && !self.out.is_empty() {
            let blank = self.prefix();
            self.out.push_str(blank.trim_end());
            self.out.push('\n');
        }
        self.blank_pending = false;
    }

    fn end_block(&mut self) {
        self.end_line();
        self.blank_pending = true;
    }

    fn text(&mut self, text: &str) {
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                self.out.push('\n');
                self.at_line_start = true;
            }
            if line.is_empty() {
                continue;
            }
            if self.at_line_start {
                let prefix = self.prefix();
                self.out.push_str(&prefix);
                self.at_line_start = false;
            }
            self.out.push_str(line);
        }
        self.after_marker = false;
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) | Event::Code(t) => self.text(&t),
            Event::InlineMath(t) | Event::DisplayMath(t) => self.text(&t),
            Event::SoftBreak | Event::HardBreak => self.text("\n"),
            Event::Rule => {
                self.start_block();
                self.text("----");
                self.end_block();
            }
            // Not enabled; and raw HTML is nothing to read in plain text.
            Event::Html(_)
            | Event::InlineHtml(_)
            | Event::FootnoteReference(_)
            | Event::TaskListMarker(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::Heading { .. } => self.start_block(),
            Tag::CodeBlock(kind) => {
                self.start_block();
                if let CodeBlockKind::Indented = kind {
                    // Indented code stays visibly code.
                    self.indent.push(4);
                } else {
                    self.indent.push(0);
                }
            }
            Tag::BlockQuote(_) => {
                self.start_block();
                self.quote_depth += 1;
            }
            Tag::List(start) => {
                // A list inside an item starts on the item's next line.
                self.after_marker = false;
                self.start_block();
                self.lists.push(start);
            }
            Tag::Item => {
                self.end_line();
                if self.blank_pending {
                    // Loose lists keep their blank lines between items.
                    self.start_block();
                }
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => "- ".to_owned(),
                };
                self.text(&marker);
                self.indent.push(marker.len());
                self.after_marker = true;
            }
            Tag::Link { dest_url, .. } => {
                self.links.push((dest_url.to_string(), self.out.len()));
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::Heading(_) => self.end_block(),
            TagEnd::CodeBlock => {
                self.indent.pop();
                self.end_block();
            }
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                self.end_block();
            }
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.end_block();
                } else {
                    // A nested list ends where its item does.
                    self.end_line();
                }
            }
            TagEnd::Item => {
                self.indent.pop();
                self.after_marker = false;
                self.end_line();
            }
            TagEnd::Link => {
                if let Some((url, start)) = self.links.pop() {
                    let text = self.out.get(start..).unwrap_or_default();
                    let same = text == url || url.strip_prefix("mailto:") == Some(text);
                    if allowed_url(&url) && !same {
                        self.text(&format!(" <{url}>"));
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(mut self) -> String {
        let len = self.out.trim_end().len();
        self.out.truncate(len);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_event_handlers_are_stripped() {
        let html = to_html(
            "Hello <script>alert('x')</script> there\n\n\
             <p onclick=\"steal()\">click</p>\n\n\
             <img src=\"https://tracker.example/p.gif\" onerror=\"x()\">",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert"), "{html}");
        assert!(!html.contains("onclick"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("click"), "{html}");
    }

    #[test]
    fn only_web_and_mail_links_survive() {
        let html = to_html(
            "[bad](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=) \
             [rel](/relative) [ok](https://example.no/a?b=1) [mail](mailto:cert@example.no)",
        );
        assert!(!html.contains("javascript"), "{html}");
        assert!(!html.contains("data:"), "{html}");
        assert!(!html.contains("/relative"), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.no/a?b=1" rel="noopener noreferrer">ok</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"href="mailto:cert@example.no""#), "{html}");
        // The text of a removed link stays.
        assert!(html.contains(">bad</a>"), "{html}");
    }

    #[test]
    fn images_keep_only_their_alt_text() {
        let html = to_html("See ![the chart](https://example.no/c.png) below");
        assert_eq!(html.trim(), "<p>See the chart below</p>");
        assert_eq!(
            to_plain_text("See ![the chart](https://example.no/c.png) below"),
            "See the chart below"
        );
    }

    #[test]
    fn lists_bold_and_code_are_kept() {
        let html = to_html("1. Patch **now**\n2. Run `Test-ProxyLogon.ps1`\n\n- a\n- b");
        assert!(html.contains("<ol>"), "{html}");
        assert!(
            html.contains("<li>Patch <strong>now</strong></li>"),
            "{html}"
        );
        assert!(html.contains("<code>Test-ProxyLogon.ps1</code>"), "{html}");
        assert!(html.contains("<ul>"), "{html}");
    }

    #[test]
    fn text_in_markdown_is_escaped() {
        let html = to_html("1 < 2 & `<b>` stays code");
        assert!(html.contains("1 &lt; 2 &amp;"), "{html}");
        assert!(html.contains("<code>&lt;b&gt;</code>"), "{html}");
        assert_eq!(
            escape_html("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn plain_text_reads_as_written() {
        let md = "Patching is **not enough**. See *below*.\n\
                  \n\
                  1. Install the updates (March 2021\n   or later).\n\
                  2. Check for `lsass` dumps.\n\
                  \n\
                  - one\n\
                  - two\n  - nested\n\
                  - three\n\
                  \n\
                  Read [the guidance](https://example.no/g) or <https://example.no/x>.\n\
                  Mail <cert@example.no>. [Bad](javascript:x()).\n\
                  \n\
                  ```\ncode  as is\n```\n\
                  \n\
                  > quoted\n> text";
        assert_eq!(
            to_plain_text(md),
            "Patching is not enough. See below.\n\
             \n\
             1. Install the updates (March 2021\n   or later).\n\
             2. Check for lsass dumps.\n\
             \n\
             - one\n\
             - two\n  - nested\n\
             - three\n\
             \n\
             Read the guidance <https://example.no/g> or https://example.no/x.\n\
             Mail cert@example.no. Bad.\n\
             \n\
             code  as is\n\
             \n\
             > quoted\n> text"
        );
    }

    #[test]
    fn loose_lists_keep_their_paragraphs_apart() {
        let md = "1. First\n\n   more of the first\n\n2. Second";
        assert_eq!(
            to_plain_text(md),
            "1. First\n\n   more of the first\n\n2. Second"
        );
    }

    #[test]
    fn raw_html_is_not_plain_text() {
        assert_eq!(
            to_plain_text("Hi <b onclick=\"x\">there</b>\n\n<div>\nblock\n</div>"),
            "Hi there"
        );
    }
}
