//! Removes `<think>…</think>` reasoning spans from streamed text.
//!
//! Reasoning models served through OpenAI-compatible servers (DeepSeek-R1 or Qwen3 on Ollama, vLLM,
//! llama.cpp) often put their chain of thought inline in `delta.content`, wrapped in `<think>` tags. The
//! Git Recap contract forbids forwarding it. Tags may be split across deltas, so the filter holds back a
//! trailing fragment that could still become a tag until the next delta decides.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Streaming state.
#[derive(Debug, Default)]
pub struct ThinkFilter {
    inside: bool,
    pending: String,
    /// Nothing visible was emitted yet; leading whitespace after a removed span is dropped.
    at_start: bool,
    started: bool,
}

impl ThinkFilter {
    pub fn new() -> Self {
        ThinkFilter { at_start: true, ..Default::default() }
    }

    /// Feed one delta; returns the visible text it releases (possibly empty).
    pub fn push(&mut self, delta: &str) -> String {
        self.pending.push_str(delta);
        let mut out = String::new();
        loop {
            let tag = if self.inside { CLOSE } else { OPEN };
            if let Some(at) = self.pending.find(tag) {
                if !self.inside {
                    out.push_str(&self.pending[..at]);
                }
                self.pending.drain(..at + tag.len());
                self.inside = !self.inside;
                if !self.inside {
                    self.started = true;
                }
                continue;
            }
            // Keep the longest suffix that is a prefix of the tag; release (or drop) the rest.
            let keep = partial_suffix(&self.pending, tag);
            let cut = self.pending.len() - keep;
            if !self.inside {
                out.push_str(&self.pending[..cut]);
            }
            self.pending.drain(..cut);
            break;
        }
        self.visible(out)
    }

    /// The stream ended: release a held-back fragment that never became a tag (an unclosed
    /// `<think>` span is dropped).
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        if self.inside { String::new() } else { self.visible(rest) }
    }

    fn visible(&mut self, mut text: String) -> String {
        if self.at_start && self.started {
            let trimmed = text.trim_start();
            text = trimmed.to_owned();
        }
        if !text.is_empty() {
            self.at_start = false;
        }
        text
    }
}

fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| text.len() >= n && text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(deltas: &[&str]) -> String {
        let mut filter = ThinkFilter::new();
        let mut out: String = deltas.iter().map(|d| filter.push(d)).collect();
        out.push_str(&filter.finish());
        out
    }

    #[test]
    fn passes_plain_text_through() {
        assert_eq!(run(&["Hello ", "world", " <b>x</b> a < b"]), "Hello world <b>x</b> a < b");
    }

    #[test]
    fn removes_a_think_span_split_everywhere() {
        let text = "<think>\nLet me reason about this…\n</think>\n\n- **[`api`]** Shipped it.";
        for split in 0..=text.len() {
            if !text.is_char_boundary(split) {
                continue;
            }
            assert_eq!(run(&[&text[..split], &text[split..]]), "- **[`api`]** Shipped it.", "split at {split}");
        }
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(run(&refs), "- **[`api`]** Shipped it.");
    }

    #[test]
    fn drops_an_unclosed_span_and_releases_a_false_start() {
        assert_eq!(run(&["answer <thi", "nk>secret"]), "answer ");
        assert_eq!(run(&["a <thin"]), "a <thin");
        assert_eq!(run(&["a <thin", "g>"]), "a <thing>");
    }
}
