//! The answer cache: upstream answers as they came, kept for their TTL, bounded in
//! bytes.
//!
//! The cache holds the *true* answer, never a rewritten one: policy is applied each
//! time an answer leaves, so a name cached before its rule arrived is blocked the
//! moment the rule is loaded. An entry keeps the answer's bytes and what was learnt
//! when it was walked ([`Answer`]), so serving it is a copy and a few patches.
//!
//! The map is split into shards, each behind its own mutex held only for a lookup or
//! an insert. Keys are hashed with SipHash under a per-process random key (the
//! names are chosen by clients, so a predictable hash could be flooded). Eviction is
//! second-chance FIFO (CLOCK): an entry used since it was last considered goes round
//! once more; expired entries go when met.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::message::{self, Answer, HEADER_LEN, MAX_NAME};

/// Bytes an entry costs beyond its message: the struct, the map slot, the queue.
const ENTRY_OVERHEAD: usize = 160;
const SHARDS: usize = 64;

/// A cache key: the lowercase query name in wire format, the type, and the bits of
/// the query that change the answer (DO, CD). Built on the stack.
#[derive(Clone, Copy)]
pub(crate) struct Key {
    bytes: [u8; MAX_NAME + 3],
    len: usize,
}

impl Key {
    /// `qname` is lowercased here.
    pub fn new(qname: &[u8], qtype: u16, dnssec_ok: bool, cd: bool) -> Key {
        let mut bytes = [0u8; MAX_NAME + 3];
        let n = qname.len().min(MAX_NAME);
        for (slot, b) in bytes.iter_mut().zip(qname.iter().take(n)) {
            *slot = b.to_ascii_lowercase();
        }
        let tail = [
            (qtype >> 8) as u8,
            qtype as u8,
            u8::from(dnssec_ok) | (u8::from(cd) << 1),
        ];
        for (slot, b) in bytes.iter_mut().skip(n).zip(tail) {
            *slot = b;
        }
        Key { bytes, len: n + 3 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// The query name (lowercase wire format).
    pub fn qname(&self) -> &[u8] {
        self.bytes.get(..self.len - 3).unwrap_or_default()
    }

    pub fn qtype(&self) -> u16 {
        u16::from_be_bytes([
            self.bytes.get(self.len - 3).copied().unwrap_or(0),
            self.bytes.get(self.len - 2).copied().unwrap_or(0),
        ])
    }

    pub fn dnssec_ok(&self) -> bool {
        self.bytes.get(self.len - 1).is_some_and(|b| b & 1 != 0)
    }

    pub fn cd(&self) -> bool {
        self.bytes.get(self.len - 1).is_some_and(|b| b & 2 != 0)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        message::name_text(self.qname(), &mut s);
        write!(f, "Key({s}/{})", self.qtype())
    }
}

/// One cached answer.
#[derive(Debug)]
pub(crate) struct Entry {
    key: Box<[u8]>,
    pub wire: Box<[u8]>,
    pub rcode: u8,
    /// TTL offsets with the TTLs as received.
    ttls: Box<[(u16, u32)]>,
    /// How long the entry lives (seconds) and when it was stored.
    pub ttl: u32,
    stored: Instant,
    /// The chain targets as text, for [`Screen::answer`](super::Screen::answer).
    pub names: Box<[Box<str>]>,
    /// The chain targets in wire format with their CNAME's TTL.
    pub links: Box<[(Box<[u8]>, u32)]>,
    pub addrs: Box<[IpAddr]>,
    referenced: AtomicBool,
    generation: u64,
}

impl Entry {
    pub fn new(key: &Key, answer: Answer, now: Instant) -> Entry {
        let mut text = String::new();
        let names = answer
            .chain
            .iter()
            .map(|(w, _)| {
                message::name_text(w, &mut text);
                text.clone().into_boxed_str()
            })
            .collect();
        Entry {
            key: key.as_bytes().into(),
            wire: answer.wire.into_boxed_slice(),
            rcode: answer.rcode,
            ttls: answer.ttls.into_boxed_slice(),
            ttl: answer.ttl,
            stored: now,
            names,
            links: answer
                .chain
                .into_iter()
                .map(|(w, t)| (w.into_boxed_slice(), t))
                .collect(),
            addrs: answer.addrs.into_boxed_slice(),
            referenced: AtomicBool::new(false),
            generation: 0,
        }
    }

    fn size(&self) -> usize {
        ENTRY_OVERHEAD
            + self.key.len()
            + self.wire.len()
            + self.ttls.len() * 8
            + self.names.iter().map(|n| n.len() + 16).sum::<usize>()
            + self.links.iter().map(|(l, _)| l.len() + 24).sum::<usize>()
            + self.addrs.len() * 17
    }

    fn expires(&self) -> Instant {
        self.stored + Duration::from_secs(u64::from(self.ttl))
    }

    pub fn fresh_at(&self, now: Instant) -> bool {
        now < self.expires()
    }

    /// Writes the cached answer into `out` for a query with `id` and `flags`, the
    /// question name spelled as the client spelled it (`qname`, same length), TTLs
    /// lowered by the time spent in the cache. No OPT record is added here.
    pub fn write(&self, out: &mut Vec<u8>, id: u16, client_flags: u16, qname: &[u8], now: Instant) {
        out.clear();
        out.extend_from_slice(&self.wire);
        message::put_u16(out, 0, id);
        let upstream = message::flags_of(&self.wire);
        let keep = upstream & (0x000F | message::FLAG_AD);
        let mut flags = message::FLAG_QR
            | message::FLAG_RA
            | keep
            | (client_flags & (message::FLAG_RD | message::FLAG_CD));
        // AD only to a client that asked for DNSSEC data or set AD itself (RFC 6840 §5.8).
        let dnssec_aware = self.key.last().is_some_and(|b| b & 1 != 0);
        if !dnssec_aware && client_flags & message::FLAG_AD == 0 {
            flags &= !message::FLAG_AD;
        }
        message::put_u16(out, 2, flags);
        if let Some(q) = out.get_mut(HEADER_LEN..HEADER_LEN + qname.len()) {
            q.copy_from_slice(qname);
        }
        let age = now.saturating_duration_since(self.stored).as_secs();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        for &(at, ttl) in self.ttls.iter() {
            message::put_u32(out, usize::from(at), ttl.min(self.ttl).saturating_sub(age));
        }
    }
}

/// The cache.
#[derive(Debug)]
pub(crate) struct Cache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    shard_budget: usize,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<u64, Arc<Entry>, BuildHasherDefault<Prehashed>>,
    /// Insertion order for eviction: (hash, generation).
    queue: VecDeque<(u64, u64)>,
    bytes: usize,
    next_generation: u64,
}

/// The hasher of a map whose keys are already keyed hashes.
#[derive(Debug, Default, Clone, Copy)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Cache {
    /// A cache holding at most about `max_bytes` (0: nothing is cached).
    pub fn new(max_bytes: usize) -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            shard_budget: max_bytes / SHARDS,
        }
    }

    fn place(&self, key: &Key) -> (u64, &Mutex<Shard>) {
        let hash = self.hasher.hash_one(key.as_bytes());
        let shard = &self.shards[(hash as usize) % SHARDS];
        (hash, shard)
    }

    /// The fresh entry for `key`, if any.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let (hash, shard) = self.place(key);
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = shard.map.get(&hash)?;
        if &*entry.key != key.as_bytes() {
            return None;
        }
        if !entry.fresh_at(now) {
            if let Some(old) = shard.map.remove(&hash) {
                shard.bytes = shard.bytes.saturating_sub(old.size());
            }
            return None;
        }
        entry.referenced.store(true, Ordering::Relaxed);
        Some(entry.clone())
    }

    /// Stores `entry` (if its TTL allows), evicting as needed; returns it shared.
    pub fn insert(&self, key: &Key, mut entry: Entry) -> Arc<Entry> {
        let size = entry.size();
        if entry.ttl == 0 || size > self.shard_budget {
            return Arc::new(entry);
        }
        let (hash, shard) = self.place(key);
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.next_generation += 1;
        entry.generation = shard.next_generation;
        let entry = Arc::new(entry);
        if let Some(old) = shard.map.insert(hash, entry.clone()) {
            shard.bytes = shard.bytes.saturating_sub(old.size());
        }
        shard.bytes += size;
        let generation = entry.generation;
        shard.queue.push_back((hash, generation));
        // Second chance, bounded: each queued item is looked at most twice a call.
        let mut budget = 2 * shard.queue.len();
        while shard.bytes > self.shard_budget && budget > 0 {
            budget -= 1;
            let Some((h, generation)) = shard.queue.pop_front() else {
                break;
            };
            let Some(e) = shard.map.get(&h) else {
                continue;
            };
            if e.generation != generation {
                continue;
            }
            if e.referenced.swap(false, Ordering::Relaxed) && h != hash {
                shard.queue.push_back((h, generation));
                continue;
            }
            if let Some(old) = shard.map.remove(&h) {
                shard.bytes = shard.bytes.saturating_sub(old.size());
            }
        }
        // Queue items whose entry was replaced or removed are dropped as met above;
        // keep the queue from growing without bound when nothing needs evicting.
        if shard.queue.len() > 2 * shard.map.len() + 64 {
            let Shard { map, queue, .. } = &mut *shard;
            queue.retain(|(h, g)| map.get(h).is_some_and(|e| e.generation == *g));
        }
        entry
    }

    /// Entries and bytes held (for tests and stats).
    pub fn usage(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (n + s.map.len(), b + s.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::message::{FLAG_QR, TYPE_A, build_query, parse_answer, text_wire};

    /// An upstream answer to `name` A with one record of TTL `ttl`.
    fn answer(name: &str, ttl: u32) -> (Key, Answer) {
        let qname = text_wire(name).unwrap_or_else(|e| panic!("{e}"));
        let mut m = build_query(5, &qname, TYPE_A, false, false, 1232);
        m.truncate(m.len() - 11);
        m[2] |= (FLAG_QR >> 8) as u8;
        m[7] = 1;
        m[11] = 0;
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        let a = parse_answer(&m, 5, &qname, TYPE_A).unwrap_or_else(|e| panic!("{e:?}"));
        (Key::new(&qname, TYPE_A, false, false), a)
    }

    #[test]
    fn entries_expire_and_ttls_count_down() {
        let cache = Cache::new(1 << 20);
        let t0 = Instant::now();
        let (key, a) = answer("www.example", 60);
        cache.insert(&key, Entry::new(&key, a, t0));
        let later = t0 + Duration::from_secs(25);
        let e = cache.get(&key, later).unwrap_or_else(|| panic!("missing"));
        let mut out = Vec::new();
        e.write(
            &mut out,
            0xBEEF,
            message::FLAG_RD,
            b"\x03WWW\x07example\x00",
            later,
        );
        assert_eq!(&out[..2], &[0xBE, 0xEF]);
        assert_eq!(&out[12..25], b"\x03WWW\x07example\x00");
        let ttl_at = out.len() - 10;
        assert_eq!(&out[ttl_at..ttl_at + 4], &35u32.to_be_bytes());
        assert!(cache.get(&key, t0 + Duration::from_secs(60)).is_none());
        assert_eq!(cache.usage().0, 0);
        // Another key with the same name but another type is another entry.
        let other = Key::new(key.qname(), 28, false, false);
        assert!(cache.get(&other, t0).is_none());
    }

    #[test]
    fn zero_ttl_is_not_cached_and_size_is_bounded() {
        let cache = Cache::new(SHARDS * 2_000);
        let t0 = Instant::now();
        let (key, a) = answer("zero.example", 0);
        cache.insert(&key, Entry::new(&key, a, t0));
        assert!(cache.get(&key, t0).is_none());
        for i in 0..2_000 {
            let (key, a) = answer(&format!("n{i}.example"), 300);
            cache.insert(&key, Entry::new(&key, a, t0));
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= SHARDS * 2_000, "{bytes}");
        assert!(entries > 100 && entries < 2_000, "{entries}");
    }

    #[test]
    fn used_entries_get_a_second_chance() {
        // One shard's worth: fill, touch the first, add more; the touched one stays.
        let cache = Cache::new(SHARDS * 4_000);
        let t0 = Instant::now();
        let (first, a) = answer("keep.example", 300);
        cache.insert(&first, Entry::new(&first, a, t0));
        let mut kept = 0;
        for i in 0..3_000 {
            if cache.get(&first, t0).is_some() {
                kept += 1;
            }
            let (key, a) = answer(&format!("x{i}.example"), 300);
            cache.insert(&key, Entry::new(&key, a, t0));
        }
        assert_eq!(kept, 3_000);
        assert!(cache.get(&first, t0).is_some());
    }
}
