//! Zero-copy views over a batch: the byte buffer plus the packed index the host sends.

/// u64 words per message in the packed index (see `wit/plugin.wit`, `msg-batch`).
pub const INDEX_WORDS: usize = 12;

const W_QUEUE: usize = 0;
const W_QUEUE_OFFSET: usize = 1;
const W_COMMITLOG_OFFSET: usize = 2;
const W_BORN: usize = 3;
const W_STORED: usize = 4;
const W_TAGS_CODE: usize = 5;
const W_RECONSUME: usize = 6;
const W_TOPIC: usize = 7;
const W_TAGS: usize = 8;
const W_KEYS: usize = 9;
const W_PROPERTIES: usize = 10;
const W_BODY: usize = 11;

const NAME_VALUE_SEPARATOR: u8 = 1;
const PROPERTY_SEPARATOR: u8 = 2;

/// A batch: messages in the order the host sent them.
pub struct Batch<'a> {
    data: &'a [u8],
    index: &'a [u64],
}

impl<'a> Batch<'a> {
    pub fn new(data: &'a [u8], index: &'a [u64]) -> Batch<'a> {
        Batch { data, index }
    }

    pub fn len(&self) -> usize {
        self.index.len() / INDEX_WORDS
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Message<'a>> + '_ {
        self.index.chunks_exact(INDEX_WORDS).map(|w| Message { data: self.data, w })
    }
}

/// One message of a batch. Fields the plugin did not ask for (see `Needs`) read as empty.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    data: &'a [u8],
    w: &'a [u64],
}

impl<'a> Message<'a> {
    fn span(&self, word: usize) -> &'a [u8] {
        let v = self.w[word];
        let start = (v >> 32) as usize;
        let len = (v & 0xFFFF_FFFF) as usize;
        self.data.get(start..start.saturating_add(len)).unwrap_or(&[])
    }

    fn text(&self, word: usize) -> &'a str {
        std::str::from_utf8(self.span(word)).unwrap_or("")
    }

    pub fn queue_id(&self) -> u32 {
        (self.w[W_QUEUE] & 0xFFFF_FFFF) as u32
    }

    pub fn sys_flag(&self) -> u32 {
        (self.w[W_QUEUE] >> 32) as u32
    }

    pub fn queue_offset(&self) -> u64 {
        self.w[W_QUEUE_OFFSET]
    }

    pub fn commitlog_offset(&self) -> u64 {
        self.w[W_COMMITLOG_OFFSET]
    }

    pub fn born_timestamp(&self) -> u64 {
        self.w[W_BORN]
    }

    pub fn store_timestamp(&self) -> u64 {
        self.w[W_STORED]
    }

    /// RocketMQ's tags hash code (`String.hashCode` of the tags).
    pub fn tags_code(&self) -> i64 {
        self.w[W_TAGS_CODE] as i64
    }

    pub fn reconsume_times(&self) -> u32 {
        self.w[W_RECONSUME] as u32
    }

    pub fn topic(&self) -> &'a str {
        self.text(W_TOPIC)
    }

    /// The tags, if the message has any.
    pub fn tags(&self) -> Option<&'a str> {
        Some(self.text(W_TAGS)).filter(|t| !t.is_empty())
    }

    /// The keys (RocketMQ separates several keys with a space).
    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.text(W_KEYS).split(' ').filter(|k| !k.is_empty())
    }

    /// The raw keys string.
    pub fn keys_str(&self) -> &'a str {
        self.text(W_KEYS)
    }

    /// A property (user or system, e.g. `TAGS`, `KEYS`, `UNIQ_KEY`).
    pub fn property(&self, name: &str) -> Option<&'a str> {
        // Compared as bytes; only the value found is checked for UTF-8.
        let name = name.as_bytes();
        self.span(W_PROPERTIES).split(|b| *b == PROPERTY_SEPARATOR).find_map(|pair| {
            let value = pair.strip_prefix(name)?.strip_prefix(&[NAME_VALUE_SEPARATOR])?;
            std::str::from_utf8(value).ok()
        })
    }

    /// Looks up several properties in one pass over the packed properties: `out[i]` becomes the
    /// value of `names[i]` (the first one stored with that name), or `None`. One pass instead of
    /// one [`Message::property`] scan per name; it stops once every name is found. Names past
    /// `out.len()` are ignored.
    pub fn properties_into<N: AsRef<str>>(&self, names: &[N], out: &mut [Option<&'a str>]) {
        let n = names.len().min(out.len());
        let (names, out) = (&names[..n], &mut out[..n]);
        out.fill(None);
        let props = self.span(W_PROPERTIES);
        let mut missing = n;
        let mut at = 0;
        while missing > 0 && at < props.len() {
            // One pair: `name 0x01 value`, up to the next 0x02 (or the end).
            let start = at;
            let split = next_separator(props, at);
            match props.get(split) {
                None => break,
                Some(&PROPERTY_SEPARATOR) => {
                    at = split + 1;
                    continue;
                }
                Some(_) => {}
            }
            let mut end = next_separator(props, split + 1);
            while props.get(end) == Some(&NAME_VALUE_SEPARATOR) {
                end = next_separator(props, end + 1);
            }
            at = end + 1;
            let name = &props[start..split];
            for (want, slot) in names.iter().zip(out.iter_mut()) {
                if slot.is_none() && want.as_ref().as_bytes() == name {
                    if let Ok(v) = std::str::from_utf8(&props[split + 1..end]) {
                        *slot = Some(v);
                        missing -= 1;
                    }
                    break;
                }
            }
        }
    }

    /// Every property, in the order they were stored.
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.span(W_PROPERTIES).split(|b| *b == PROPERTY_SEPARATOR).filter_map(|pair| {
            let at = pair.iter().position(|b| *b == NAME_VALUE_SEPARATOR)?;
            let name = std::str::from_utf8(&pair[..at]).ok()?;
            let value = std::str::from_utf8(&pair[at + 1..]).ok()?;
            Some((name, value))
        })
    }

    pub fn body(&self) -> &'a [u8] {
        self.span(W_BODY)
    }
}

/// The first separator (0x01 or 0x02) in `bytes` from `at`, or `bytes.len()`: eight bytes a
/// step (a word has a byte below 3 when `(w - 0x03..03) & !w & 0x80..80` is not zero, and its
/// lowest such bit marks the first one).
fn next_separator(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let low = w.wrapping_sub(ONES * 3) & !w & HIGH_BITS;
        if low == 0 {
            at += 8;
            continue;
        }
        let i = at + (low.trailing_zeros() / 8) as usize;
        if bytes[i] != 0 {
            return i;
        }
        at = i + 1;
    }
    while at < bytes.len() && !matches!(bytes[at], NAME_VALUE_SEPARATOR | PROPERTY_SEPARATOR) {
        at += 1;
    }
    at.min(bytes.len())
}

/// Packs message `i`'s bit into a bitmap of `n` messages.
pub(crate) fn bitmap(n: usize, mut bit: impl FnMut(usize) -> bool) -> Vec<u64> {
    let mut out = vec![0u64; n.div_ceil(64)];
    for (i, word) in (0..n).map(|i| (i, i / 64)) {
        if bit(i) {
            out[word] |= 1 << (i % 64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Batch, INDEX_WORDS, W_PROPERTIES};

    /// Looks `names` up in raw packed properties, one pass and one name at a time.
    fn both(props: &[u8], names: &[&str]) -> (Vec<Option<String>>, Vec<Option<String>>) {
        let mut index = [0u64; INDEX_WORDS];
        index[W_PROPERTIES] = props.len() as u64;
        let batch = Batch::new(props, &index);
        let Some(m) = batch.iter().next() else { panic!("one message") };
        let mut out = vec![None; names.len()];
        m.properties_into(names, &mut out);
        let one_pass = out.iter().map(|v| v.map(str::to_owned)).collect();
        let by_name = names.iter().map(|n| m.property(n).map(str::to_owned)).collect();
        (one_pass, by_name)
    }

    #[test]
    fn one_pass_lookup_agrees_with_property() {
        let cases: [&[u8]; 6] = [
            b"TAGS\x01TagA\x02KEYS\x01key-1\x02region\x01eu\x02a\x017\x02",
            b"a\x01first\x02a\x01second",
            b"orphan\x02a\x01after a pair without a separator\x02b\x01\x02",
            b"a\x01value\x01with\x01separators inside it\x02b\x012",
            b"long-name-of-many-bytes\x01\x00\x00zero bytes are no separators\x00\x02b\x01x",
            b"a\x01\xff\xfe\x02a\x01valid after invalid UTF-8\x02",
        ];
        for props in cases {
            let (one_pass, by_name) = both(props, &["a", "b", "long-name-of-many-bytes", "missing"]);
            assert_eq!(one_pass, by_name, "{}", String::from_utf8_lossy(props));
        }
        let (found, _) = both(cases[0], &["a", "region", "TAGS"]);
        assert_eq!(found, [Some("7".into()), Some("eu".into()), Some("TagA".into())]);
    }
}
