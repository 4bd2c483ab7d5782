//! One policy zone's rules, compact and immutable, with cheap incremental updates.
//!
//! A national filter holds millions of names, and RPZ feeds change by IXFR every
//! few minutes. Resolvers that keep one heap object per rule spend ~200 bytes a rule
//! and copy the whole set on update (PowerDNS Recursor users report 2× memory during
//! updates). Here:
//!
//! - **Names live in arenas.** A shard's names are one `Box<[u8]>` of entries
//!   `[flags][len][name]`; a `hashbrown::HashTable<u32>` of arena offsets indexes
//!   them by the chained suffix hash of [`crate::name`]. Exact and wildcard triggers
//!   of one name share the entry: `flags` holds one 4-bit response code for each.
//!   Redirects and local data (rare) sit in a side table keyed by offset. About 12
//!   bytes a name beyond its text (measured: `docs/performance.md`).
//! - **A lookup probes at most once per label**: the whole name for an exact
//!   trigger, each ancestor for a wildcard, most specific first; a depth (label
//!   count) at which the set holds no trigger of that kind is not probed at all.
//! - **Sharded by hash.** An update (IXFR) never rebuilds or copies the set. Each
//!   touched shard gets a small *overlay*: a table of the changed names' new state
//!   plus the sorted offsets of its base entries that are now dead. The new set
//!   shares every base (and every untouched shard) with the old one, so applying a
//!   delta costs memory in proportion to the delta, and the swap is atomic.
//!   [`RuleSet::compact_one`] later folds one shard's overlay into a new base: a
//!   change no reader can observe, so a background task swaps shard by shard and the
//!   peak stays the set with its overlays plus one shard. While a shard carries an
//!   overlay, a label that hashes to it costs a second probe (into the small
//!   overlay table).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashTable;
use indicator::{Domain, IpNet};

use crate::ip::IpRules;
use crate::name::{QueryName, hash_name, label_count};
use crate::{Response, Trigger, ZoneTrigger};

/// Entries per shard before the builder doubles the shard count.
const SHARD_TARGET: usize = 8_192;
/// Most shards a set is split into.
const MAX_SHARDS: usize = 1_024;
/// Hash bits that pick the shard: above those hashbrown uses for buckets, below
/// those it uses for its tags.
const SHARD_SHIFT: u32 = 40;
/// `[flags][len]` before each name.
const HEADER: usize = 2;

// Response codes, 4 bits each in an entry's flags (low: exact, high: wildcard).
const NONE: u8 = 0;
const EXTRA: u8 = 6;
static BUILTIN: [Response; 5] = [
    Response::Nxdomain,
    Response::Nodata,
    Response::Passthru,
    Response::Drop,
    Response::TcpOnly,
];

fn code_of(response: &Response) -> u8 {
    match response {
        Response::Nxdomain => 1,
        Response::Nodata => 2,
        Response::Passthru => 3,
        Response::Drop => 4,
        Response::TcpOnly => 5,
        Response::Redirect(_) | Response::LocalData(_) => EXTRA,
    }
}

fn shard_of(hash: u64, shards: usize) -> usize {
    (hash >> SHARD_SHIFT) as usize & (shards - 1)
}

/// The state of one name: the response of its exact and of its wildcard trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    exact: Option<Response>,
    wild: Option<Response>,
}

impl State {
    fn is_empty(&self) -> bool {
        self.exact.is_none() && self.wild.is_none()
    }
    fn side(&mut self, wildcard: bool) -> &mut Option<Response> {
        if wildcard {
            &mut self.wild
        } else {
            &mut self.exact
        }
    }
}

/// An immutable table of names.
#[derive(Debug, Default)]
struct Table {
    arena: Box<[u8]>,
    index: HashTable<u32>,
    /// Responses that do not fit a code, by `offset << 1 | wildcard`, sorted.
    extras: Box<[(u32, Response)]>,
}

impl Table {
    fn name_at(&self, offset: u32) -> &[u8] {
        let o = offset as usize;
        let len = self.arena.get(o + 1).map_or(0, |&l| usize::from(l));
        self.arena
            .get(o + HEADER..o + HEADER + len)
            .unwrap_or_default()
    }

    fn flags_at(&self, offset: u32) -> u8 {
        self.arena.get(offset as usize).copied().unwrap_or(NONE)
    }

    #[inline]
    fn find(&self, hash: u64, name: &[u8]) -> Option<u32> {
        self.index.find(hash, |&o| self.name_at(o) == name).copied()
    }

    fn response(&self, offset: u32, wildcard: bool) -> Option<&Response> {
        let flags = self.flags_at(offset);
        let code = if wildcard { flags >> 4 } else { flags & 0xf };
        match code {
            NONE => None,
            EXTRA => {
                let key = offset << 1 | u32::from(wildcard);
                let at = self.extras.binary_search_by_key(&key, |(k, _)| *k).ok()?;
                self.extras.get(at).map(|(_, r)| r)
            }
            code => BUILTIN.get(usize::from(code) - 1),
        }
    }

    fn state(&self, offset: u32) -> State {
        State {
            exact: self.response(offset, false).cloned(),
            wild: self.response(offset, true).cloned(),
        }
    }

    /// Offsets of every entry, in arena order.
    fn offsets(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = 0usize;
        std::iter::from_fn(move || {
            let len = usize::from(*self.arena.get(at + 1)?);
            let offset = at as u32;
            at += HEADER + len;
            Some(offset)
        })
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn heap_bytes(&self) -> usize {
        self.arena.len()
            + self.index.allocation_size()
            + self.extras.len() * std::mem::size_of::<(u32, Response)>()
    }
}

/// A table under construction: entries are appended; a name's state may change.
#[derive(Debug, Default)]
struct TableBuilder {
    arena: Vec<u8>,
    index: HashTable<u32>,
    extras: HashMap<u32, Response>,
}

impl TableBuilder {
    fn with_capacity(entries: usize, bytes: usize) -> TableBuilder {
        TableBuilder {
            arena: Vec::with_capacity(bytes),
            index: HashTable::with_capacity(entries),
            extras: HashMap::new(),
        }
    }

    fn name_at(&self, offset: u32) -> &[u8] {
        let o = offset as usize;
        let len = self.arena.get(o + 1).map_or(0, |&l| usize::from(l));
        self.arena
            .get(o + HEADER..o + HEADER + len)
            .unwrap_or_default()
    }

    fn find(&self, hash: u64, name: &[u8]) -> Option<u32> {
        self.index.find(hash, |&o| self.name_at(o) == name).copied()
    }

    fn code(&mut self, offset: u32, wildcard: bool, response: Option<&Response>) -> u8 {
        let key = offset << 1 | u32::from(wildcard);
        let code = response.map_or(NONE, code_of);
        match response {
            Some(r) if code == EXTRA => {
                self.extras.insert(key, r.clone());
            }
            // Extras are rare: skip the map (and its hashing) when it is empty.
            _ if !self.extras.is_empty() => {
                self.extras.remove(&key);
            }
            _ => {}
        }
        code
    }

    /// Sets one side of a name; returns the previous response of that side.
    fn set(
        &mut self,
        hash: u64,
        name: &[u8],
        wildcard: bool,
        response: Option<Response>,
    ) -> Option<Response> {
        match self.find(hash, name) {
            Some(offset) => {
                let o = offset as usize;
                let flags = self.arena.get(o).copied().unwrap_or(NONE);
                let old_code = if wildcard { flags >> 4 } else { flags & 0xf };
                let key = offset << 1 | u32::from(wildcard);
                let old = match old_code {
                    NONE => None,
                    EXTRA => self.extras.get(&key).cloned(),
                    c => BUILTIN.get(usize::from(c) - 1).cloned(),
                };
                let code = self.code(offset, wildcard, response.as_ref());
                let flags = if wildcard {
                    flags & 0x0f | code << 4
                } else {
                    flags & 0xf0 | code
                };
                if let Some(slot) = self.arena.get_mut(o) {
                    *slot = flags;
                }
                old
            }
            None => {
                let mut state = State::default();
                *state.side(wildcard) = response;
                if !state.is_empty() {
                    self.push(hash, name, &state);
                }
                None
            }
        }
    }

    /// Appends a name that is not in the table yet.
    fn push(&mut self, hash: u64, name: &[u8], state: &State) {
        let offset = self.arena.len() as u32;
        let exact = self.code(offset, false, state.exact.as_ref());
        let wild = self.code(offset, true, state.wild.as_ref());
        self.arena.push(exact | wild << 4);
        self.arena.push(name.len() as u8);
        self.arena.extend_from_slice(name);
        let arena = &self.arena;
        self.index.insert_unique(hash, offset, |&o| {
            let o = o as usize;
            let len = arena.get(o + 1).map_or(0, |&l| usize::from(l));
            hash_name(arena.get(o + HEADER..o + HEADER + len).unwrap_or_default())
        });
    }

    fn finish(self) -> Table {
        let TableBuilder {
            arena,
            mut index,
            extras,
        } = self;
        // Much unused room: an exact copy rather than a shrink in place, which an
        // allocator may do by keeping the block (mimalloc keeps the whole block when
        // it shrinks by less than half), for a set that holds 128–1024 arenas for its
        // whole life. Little room: a shrink, rather than freeing the whole block.
        let arena: Box<[u8]> = if arena.capacity() - arena.len() > arena.len() / 8 {
            Box::from(arena.as_slice())
        } else {
            arena.into_boxed_slice()
        };
        index.shrink_to_fit(|&o| {
            let o = o as usize;
            let len = arena.get(o + 1).map_or(0, |&l| usize::from(l));
            hash_name(arena.get(o + HEADER..o + HEADER + len).unwrap_or_default())
        });
        let mut extras: Vec<(u32, Response)> = extras.into_iter().collect();
        extras.sort_unstable_by_key(|(k, _)| *k);
        Table {
            arena,
            index,
            extras: extras.into_boxed_slice(),
        }
    }
}

/// Changes to one shard's base: a small table of names whose state changed (their
/// new state; no empty entries) and the base entries that no longer count.
#[derive(Debug, Default)]
struct Overlay {
    table: Table,
    /// Offsets in the base table, sorted.
    dead: Box<[u32]>,
}

/// Where a name's current state lives in a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Base(u32),
    Overlay(u32),
}

/// A name's pending change in a delta: its hash, where its state was, the new state.
#[derive(Debug)]
struct Change {
    hash: u64,
    place: Option<Place>,
    state: State,
}

#[derive(Debug, Clone, Default)]
struct Shard {
    base: Arc<Table>,
    overlay: Option<Arc<Overlay>>,
}

impl Shard {
    #[inline]
    fn find(&self, hash: u64, name: &[u8]) -> Option<(&Table, u32)> {
        match &self.overlay {
            None => self.base.find(hash, name).map(|o| (&*self.base, o)),
            Some(overlay) => match self.place(hash, name)? {
                Place::Overlay(o) => Some((&overlay.table, o)),
                Place::Base(o) => Some((&*self.base, o)),
            },
        }
    }

    fn place(&self, hash: u64, name: &[u8]) -> Option<Place> {
        if let Some(overlay) = &self.overlay {
            if overlay.table.len() > 0
                && let Some(o) = overlay.table.find(hash, name)
            {
                return Some(Place::Overlay(o));
            }
            let o = self.base.find(hash, name)?;
            return match overlay.dead.binary_search(&o) {
                Ok(_) => None,
                Err(_) => Some(Place::Base(o)),
            };
        }
        self.base.find(hash, name).map(Place::Base)
    }

    fn state(&self, place: Place) -> State {
        match (place, &self.overlay) {
            (Place::Base(o), _) => self.base.state(o),
            (Place::Overlay(o), Some(overlay)) => overlay.table.state(o),
            (Place::Overlay(_), None) => State::default(),
        }
    }

    /// Every live entry: (table, offset).
    fn entries(&self) -> impl Iterator<Item = (&Table, u32)> + '_ {
        let dead: &[u32] = self.overlay.as_ref().map_or(&[], |o| &o.dead);
        let base = self
            .base
            .offsets()
            .filter(move |o| dead.binary_search(o).is_err())
            .map(|o| (&*self.base, o));
        let overlay = self
            .overlay
            .iter()
            .flat_map(|o| o.table.offsets().map(move |off| (&o.table, off)));
        base.chain(overlay)
    }

    /// The shard with its overlay folded into a new base.
    fn merged(&self) -> Shard {
        let Some(overlay) = &self.overlay else {
            return self.clone();
        };
        let live = self.base.len() - overlay.dead.len() + overlay.table.len();
        let bytes = self.base.arena.len() + overlay.table.arena.len();
        let mut builder = TableBuilder::with_capacity(live, bytes);
        for (table, offset) in self.entries() {
            let name = table.name_at(offset);
            builder.push(hash_name(name), name, &table.state(offset));
        }
        Shard {
            base: Arc::new(builder.finish()),
            overlay: None,
        }
    }
}

/// Which name depths (label counts) hold an exact and which a wildcard trigger:
/// a lookup skips the suffixes no trigger can match. Bit `n - 1` for `n` labels.
/// Deltas only add bits (a removal leaves a harmless extra probe).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Depths {
    exact: u128,
    wild: u128,
}

impl Depths {
    fn add(&mut self, labels: usize, wildcard: bool) {
        let bit = 1u128 << (labels.clamp(1, 128) - 1);
        if wildcard {
            self.wild |= bit;
        } else {
            self.exact |= bit;
        }
    }

    #[inline]
    fn holds(&self, labels: usize, wildcard: bool) -> bool {
        let bit = 1u128 << (labels.clamp(1, 128) - 1);
        let mask = if wildcard { self.wild } else { self.exact };
        mask & bit != 0
    }
}

/// A rule matched by a query name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameMatch<'a> {
    /// The trigger's name (without `*.`).
    pub name: &'a str,
    /// Matched by the wildcard `*.name` (the query lies strictly below `name`).
    pub wildcard: bool,
    pub response: &'a Response,
}

/// A rule matched by an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressMatch<'a> {
    pub net: IpNet,
    pub response: &'a Response,
}

/// The rules of one policy zone. Cheap to clone (shards are shared).
#[derive(Debug, Clone)]
pub struct RuleSet {
    shards: Arc<[Shard]>,
    response_ips: Arc<IpRules>,
    client_ips: Arc<IpRules>,
    name_rules: usize,
    depths: Depths,
}

impl Default for RuleSet {
    fn default() -> RuleSet {
        RuleSetBuilder::new().build()
    }
}

impl RuleSet {
    pub fn builder() -> RuleSetBuilder {
        RuleSetBuilder::new()
    }

    /// Number of rules (an exact and a wildcard trigger on one name are two).
    pub fn len(&self) -> usize {
        self.name_rules + self.response_ips.len() + self.client_ips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the zone has RPZ-IP rules (a filter must resolve before it can
    /// know whether they match).
    pub fn has_response_ip_rules(&self) -> bool {
        !self.response_ips.is_empty()
    }

    pub fn has_client_ip_rules(&self) -> bool {
        !self.client_ips.is_empty()
    }

    /// The rule a query name triggers: the exact trigger on the name, else the
    /// wildcard on the closest ancestor. One table probe per label considered.
    #[inline]
    pub fn lookup_qname(&self, qname: &QueryName) -> Option<NameMatch<'_>> {
        let labels = qname.label_count();
        if self.name_rules == 0 {
            return None;
        }
        let shards = self.shards.len();
        for i in 0..labels {
            // Only probe where a trigger of that depth exists: an exact trigger as
            // deep as the whole name, a wildcard as deep as an ancestor.
            if !self.depths.holds(labels - i, i > 0) {
                continue;
            }
            let (suffix, hash) = qname.suffix(i);
            let Some(shard) = self.shards.get(shard_of(hash, shards)) else {
                continue;
            };
            let Some((table, offset)) = shard.find(hash, suffix) else {
                continue;
            };
            let wildcard = i > 0;
            if let Some(response) = table.response(offset, wildcard) {
                let name = std::str::from_utf8(table.name_at(offset)).unwrap_or_default();
                return Some(NameMatch {
                    name,
                    wildcard,
                    response,
                });
            }
        }
        None
    }

    /// The RPZ-IP rule with the longest prefix holding `addr`.
    pub fn lookup_response_ip(&self, addr: IpAddr) -> Option<AddressMatch<'_>> {
        let (net, response) = self.response_ips.lookup(addr)?;
        Some(AddressMatch { net, response })
    }

    /// The RPZ-CLIENT-IP rule with the longest prefix holding `addr`.
    pub fn lookup_client_ip(&self, addr: IpAddr) -> Option<AddressMatch<'_>> {
        let (net, response) = self.client_ips.lookup(addr)?;
        Some(AddressMatch { net, response })
    }

    /// The response of one trigger, if the set holds it.
    pub fn get(&self, trigger: &ZoneTrigger) -> Option<Response> {
        match trigger {
            ZoneTrigger::Qname(t) => {
                let name = t.domain().as_str().as_bytes();
                let hash = hash_name(name);
                let shard = self.shards.get(shard_of(hash, self.shards.len()))?;
                let (table, offset) = shard.find(hash, name)?;
                table
                    .response(offset, matches!(t, Trigger::Wildcard(_)))
                    .cloned()
            }
            ZoneTrigger::ResponseIp(n) => self.response_ips.get(n).cloned(),
            ZoneTrigger::ClientIp(n) => self.client_ips.get(n).cloned(),
        }
    }

    /// Every rule, in no particular order (for export, persistence and tests; it
    /// allocates, unlike lookups).
    pub fn rules(&self) -> impl Iterator<Item = (ZoneTrigger, Response)> + '_ {
        let names = self.shards.iter().flat_map(|shard| {
            shard.entries().flat_map(|(table, offset)| {
                let domain = std::str::from_utf8(table.name_at(offset))
                    .ok()
                    .and_then(|n| Domain::parse(n).ok());
                let exact = table.response(offset, false);
                let wild = table.response(offset, true);
                let exact = domain
                    .clone()
                    .zip(exact)
                    .map(|(d, r)| (ZoneTrigger::Qname(Trigger::Exact(d)), r.clone()));
                let wild = domain
                    .zip(wild)
                    .map(|(d, r)| (ZoneTrigger::Qname(Trigger::Wildcard(d)), r.clone()));
                exact.into_iter().chain(wild)
            })
        });
        let ips = self
            .response_ips
            .iter()
            .map(|(n, r)| (ZoneTrigger::ResponseIp(*n), r.clone()));
        let clients = self
            .client_ips
            .iter()
            .map(|(n, r)| (ZoneTrigger::ClientIp(*n), r.clone()));
        names.chain(ips).chain(clients)
    }

    /// Applies an IXFR-style delta: every removal, then every addition. A removed
    /// trigger must be present and an added one absent (after the removals), or
    /// nothing is applied: the zone has drifted and wants a full transfer.
    ///
    /// The new set shares everything untouched with `self`; each touched shard gets
    /// an overlay (see the module documentation). Memory grows by about the size of
    /// the delta, never by a copy of the set.
    pub fn apply_delta(&self, delta: &Delta) -> Result<RuleSet, DeltaError> {
        let shards = self.shards.len();
        // Name changes, by name: the shard, where the current state lives, the state.
        let mut changes: HashMap<&[u8], Change> = HashMap::new();
        let mut response_ips: Option<IpRules> = None;
        let mut client_ips: Option<IpRules> = None;
        let mut name_rules = self.name_rules;
        let mut depths = self.depths;
        let steps = delta
            .removed
            .iter()
            .map(|t| (t, None))
            .chain(delta.added.iter().map(|(t, r)| (t, Some(r))));
        for (trigger, response) in steps {
            let adding = response.is_some();
            let old = match trigger {
                ZoneTrigger::Qname(t) => {
                    let name = t.domain().as_str().as_bytes();
                    let change = changes.entry(name).or_insert_with(|| {
                        let hash = hash_name(name);
                        let shard = self.shards.get(shard_of(hash, shards));
                        let place = shard.and_then(|s| s.place(hash, name));
                        let state = match (shard, place) {
                            (Some(s), Some(p)) => s.state(p),
                            _ => State::default(),
                        };
                        Change { hash, place, state }
                    });
                    let side = change.state.side(matches!(t, Trigger::Wildcard(_)));
                    let old = side.is_some();
                    if old != adding {
                        *side = response.cloned();
                        if adding {
                            name_rules += 1;
                            depths.add(label_count(name), matches!(t, Trigger::Wildcard(_)));
                        } else {
                            name_rules -= 1;
                        }
                    }
                    old
                }
                ZoneTrigger::ResponseIp(n) | ZoneTrigger::ClientIp(n) => {
                    let rules = match trigger {
                        ZoneTrigger::ResponseIp(_) => &mut response_ips,
                        _ => &mut client_ips,
                    };
                    let current = match trigger {
                        ZoneTrigger::ResponseIp(_) => &self.response_ips,
                        _ => &self.client_ips,
                    };
                    let rules = rules.get_or_insert_with(|| IpRules::clone(current));
                    let old = rules.get(n).is_some();
                    if old != adding {
                        rules.set(*n, response.cloned());
                    }
                    old
                }
            };
            match (adding, old) {
                (true, true) => return Err(DeltaError::Present(trigger.clone())),
                (false, false) => return Err(DeltaError::Missing(trigger.clone())),
                _ => {}
            }
        }

        // Group by shard and build each touched shard's new overlay.
        let mut by_shard: HashMap<usize, Vec<(&[u8], Change)>> = HashMap::new();
        for (name, change) in changes {
            by_shard
                .entry(shard_of(change.hash, shards))
                .or_default()
                .push((name, change));
        }
        let mut new_shards: Vec<Shard> = self.shards.to_vec();
        for (index, names) in by_shard {
            let Some(old) = self.shards.get(index) else {
                continue;
            };
            let old_overlay = old.overlay.as_deref();
            let mut dead: Vec<u32> = old_overlay.map_or_else(Vec::new, |o| o.dead.to_vec());
            let mut entries = old_overlay.map_or(0, |o| o.table.len());
            let mut bytes = old_overlay.map_or(0, |o| o.table.arena.len());
            for (name, _) in &names {
                entries += 1;
                bytes += HEADER + name.len();
            }
            let mut table = TableBuilder::with_capacity(entries, bytes);
            let changed: HashMap<&[u8], ()> = names.iter().map(|(n, ..)| (*n, ())).collect();
            if let Some(overlay) = old_overlay {
                for offset in overlay.table.offsets() {
                    let name = overlay.table.name_at(offset);
                    if !changed.contains_key(name) {
                        table.push(hash_name(name), name, &overlay.table.state(offset));
                    }
                }
            }
            for (name, change) in &names {
                if let Some(Place::Base(offset)) = change.place {
                    dead.push(offset);
                }
                if !change.state.is_empty() {
                    table.push(change.hash, name, &change.state);
                }
            }
            dead.sort_unstable();
            dead.dedup();
            let table = table.finish();
            let overlay = (table.len() > 0 || !dead.is_empty()).then(|| {
                Arc::new(Overlay {
                    table,
                    dead: dead.into_boxed_slice(),
                })
            });
            if let Some(slot) = new_shards.get_mut(index) {
                *slot = Shard {
                    base: Arc::clone(&old.base),
                    overlay,
                };
            }
        }
        Ok(RuleSet {
            shards: new_shards.into(),
            response_ips: response_ips.map_or_else(|| Arc::clone(&self.response_ips), Arc::new),
            client_ips: client_ips.map_or_else(|| Arc::clone(&self.client_ips), Arc::new),
            name_rules,
            depths,
        })
    }

    /// Shards that carry an overlay (work left for [`RuleSet::compact_one`]).
    pub fn overlaid_shards(&self) -> usize {
        self.shards.iter().filter(|s| s.overlay.is_some()).count()
    }

    /// The same rules with one shard's overlay folded into its base, or `None` when
    /// no shard has one. Lookups answer the same before and after; the new set
    /// shares all other shards, so the extra memory is one shard.
    pub fn compact_one(&self) -> Option<RuleSet> {
        let index = self.shards.iter().position(|s| s.overlay.is_some())?;
        let mut shards = self.shards.to_vec();
        let merged = shards.get(index)?.merged();
        if let Some(slot) = shards.get_mut(index) {
            *slot = merged;
        }
        Some(RuleSet {
            shards: shards.into(),
            ..self.clone()
        })
    }

    /// Bytes this set holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes_beyond(None)
    }

    /// Bytes this set holds on the heap that `other` does not share (what an update
    /// costs while both are alive).
    pub fn heap_bytes_beyond(&self, other: Option<&RuleSet>) -> usize {
        let shared_shard = |i: usize, s: &Shard| -> (bool, bool) {
            let Some(o) = other.and_then(|o| o.shards.get(i)) else {
                return (false, false);
            };
            let base = Arc::ptr_eq(&s.base, &o.base);
            let overlay = match (&s.overlay, &o.overlay) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            (base, overlay)
        };
        let mut bytes = std::mem::size_of_val(&*self.shards);
        for (i, shard) in self.shards.iter().enumerate() {
            let (base_shared, overlay_shared) = shared_shard(i, shard);
            if !base_shared {
                bytes += std::mem::size_of::<Table>() + shard.base.heap_bytes();
            }
            if let Some(overlay) = &shard.overlay
                && !overlay_shared
            {
                bytes += std::mem::size_of::<Overlay>()
                    + overlay.table.heap_bytes()
                    + overlay.dead.len() * 4;
            }
        }
        let ips_shared = other.is_some_and(|o| Arc::ptr_eq(&o.response_ips, &self.response_ips));
        if !ips_shared {
            bytes += self.response_ips.heap_bytes();
        }
        let clients_shared = other.is_some_and(|o| Arc::ptr_eq(&o.client_ips, &self.client_ips));
        if !clients_shared {
            bytes += self.client_ips.heap_bytes();
        }
        bytes
    }

    /// Bytes of name text held (the part of [`RuleSet::heap_bytes`] no layout can
    /// save), for reporting overhead per rule.
    pub fn name_bytes(&self) -> usize {
        self.shards
            .iter()
            .flat_map(|s| s.entries())
            .map(|(t, o)| t.name_at(o).len())
            .sum()
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

/// An IXFR-style change to a zone's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub removed: Vec<ZoneTrigger>,
    pub added: Vec<(ZoneTrigger, Response)>,
}

/// Why a delta does not apply; nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("delta removes {0}, which the zone does not hold")]
    Missing(ZoneTrigger),
    #[error("delta adds {0}, which the zone already holds")]
    Present(ZoneTrigger),
}

/// Builds a [`RuleSet`]. Inserting a trigger twice keeps the later response.
#[derive(Debug)]
pub struct RuleSetBuilder {
    shards: Vec<TableBuilder>,
    entries: usize,
    response_ips: IpRules,
    client_ips: IpRules,
    name_rules: usize,
    depths: Depths,
}

impl Default for RuleSetBuilder {
    fn default() -> RuleSetBuilder {
        RuleSetBuilder::new()
    }
}

impl RuleSetBuilder {
    pub fn new() -> RuleSetBuilder {
        RuleSetBuilder {
            shards: vec![TableBuilder::default()],
            entries: 0,
            response_ips: IpRules::default(),
            client_ips: IpRules::default(),
            name_rules: 0,
            depths: Depths::default(),
        }
    }

    /// A builder sized for about `rules` rules: the shards are made up front instead
    /// of split as the set grows (faster and lighter for a zone of known size).
    pub fn with_capacity(rules: usize) -> RuleSetBuilder {
        RuleSetBuilder::with_capacity_and_bytes(rules, rules * 24)
    }

    /// Like [`RuleSetBuilder::with_capacity`], with an upper bound of the names'
    /// bytes (a zone file's length bounds its owners' text): no arena then grows by
    /// doubling while loading, which would leave up to half of each one unused.
    pub fn with_capacity_and_bytes(rules: usize, name_bytes: usize) -> RuleSetBuilder {
        let shards = (rules / SHARD_TARGET).next_power_of_two().min(MAX_SHARDS);
        let mut builder = RuleSetBuilder::with_shards(shards);
        let per_shard = rules / shards + 1;
        let bytes = name_bytes / shards + per_shard * HEADER;
        for shard in &mut builder.shards {
            *shard = TableBuilder::with_capacity(per_shard, bytes);
        }
        builder
    }

    /// A builder with `shards` shards (rounded up to a power of two, at most 1024).
    /// The count only grows from there. Tests use it to exercise sharding on small sets.
    pub fn with_shards(shards: usize) -> RuleSetBuilder {
        let shards = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        let mut builder = RuleSetBuilder::new();
        builder.shards.resize_with(shards, TableBuilder::default);
        builder
    }

    /// Adds a rule; returns the response it replaces, if the trigger was present.
    pub fn insert(&mut self, trigger: ZoneTrigger, response: Response) -> Option<Response> {
        match trigger {
            ZoneTrigger::Qname(t) => self.insert_name(&t, response),
            ZoneTrigger::ResponseIp(n) => self.response_ips.set(n, Some(response)),
            ZoneTrigger::ClientIp(n) => self.client_ips.set(n, Some(response)),
        }
    }

    /// Adds a query-name rule; returns the response it replaces.
    pub fn insert_name(&mut self, trigger: &Trigger, response: Response) -> Option<Response> {
        let name = trigger.domain().as_str().as_bytes();
        let hash = hash_name(name);
        let shards = self.shards.len();
        let shard = self.shards.get_mut(shard_of(hash, shards))?;
        let before = shard.index.len();
        let wildcard = matches!(trigger, Trigger::Wildcard(_));
        let old = shard.set(hash, name, wildcard, Some(response));
        self.entries += shard.index.len() - before;
        if old.is_none() {
            self.name_rules += 1;
            self.depths.add(label_count(name), wildcard);
        }
        if self.entries > self.shards.len() * SHARD_TARGET && self.shards.len() < MAX_SHARDS {
            self.split();
        }
        old
    }

    /// Doubles the shards: each splits in two by the next hash bit.
    fn split(&mut self) {
        let count = self.shards.len() * 2;
        let per_shard = self.entries / count + 1;
        let mut shards: Vec<TableBuilder> = Vec::with_capacity(count);
        shards.resize_with(count, TableBuilder::default);
        for old in std::mem::take(&mut self.shards) {
            let old = old.finish();
            for offset in old.offsets() {
                let name = old.name_at(offset);
                let hash = hash_name(name);
                if let Some(new) = shards.get_mut(shard_of(hash, count)) {
                    if new.index.capacity() == 0 {
                        *new = TableBuilder::with_capacity(per_shard, per_shard * 24);
                    }
                    new.push(hash, name, &old.state(offset));
                }
            }
        }
        self.shards = shards;
    }

    pub fn build(self) -> RuleSet {
        let shards: Vec<Shard> = self
            .shards
            .into_iter()
            .map(|b| Shard {
                base: Arc::new(b.finish()),
                overlay: None,
            })
            .collect();
        RuleSet {
            shards: shards.into(),
            response_ips: Arc::new(self.response_ips),
            client_ips: Arc::new(self.client_ips),
            name_rules: self.name_rules,
            depths: self.depths,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trig(s: &str) -> Trigger {
        Trigger::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn q(s: &str) -> QueryName {
        QueryName::from_text(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn show(set: &RuleSet, name: &str) -> String {
        match set.lookup_qname(&q(name)) {
            None => "-".to_owned(),
            Some(m) => {
                let star = if m.wildcard { "*." } else { "" };
                format!("{star}{} {}", m.name, m.response)
            }
        }
    }

    #[test]
    fn exact_beats_wildcard_and_most_specific_wildcard_wins() {
        let mut b = RuleSet::builder();
        b.insert_name(&trig("example.com"), Response::Nxdomain);
        b.insert_name(&trig("*.example.com"), Response::Nodata);
        b.insert_name(&trig("*.b.example.com"), Response::Drop);
        b.insert_name(&trig("c.b.example.com"), Response::Passthru);
        let set = b.build();
        assert_eq!(set.len(), 4);
        assert_eq!(show(&set, "example.com"), "example.com nxdomain");
        assert_eq!(show(&set, "a.example.com"), "*.example.com nodata");
        assert_eq!(show(&set, "b.example.com"), "*.example.com nodata");
        assert_eq!(show(&set, "x.b.example.com"), "*.b.example.com drop");
        assert_eq!(show(&set, "c.b.example.com"), "c.b.example.com passthru");
        assert_eq!(show(&set, "d.c.b.example.com"), "*.b.example.com drop");
        assert_eq!(show(&set, "com"), "-");
        assert_eq!(show(&set, "example.org"), "-");
        assert_eq!(show(&set, "notexample.com"), "-");
    }

    #[test]
    fn extras_and_replacement() {
        let garden = Response::Redirect(crate::Redirect {
            target: Domain::parse("garden.example").unwrap_or_else(|e| panic!("{e}")),
            prepend_qname: true,
        });
        let mut b = RuleSet::builder();
        b.insert_name(&trig("a.example"), Response::Nxdomain);
        assert_eq!(
            b.insert_name(&trig("a.example"), garden.clone()),
            Some(Response::Nxdomain)
        );
        b.insert_name(
            &trig("*.a.example"),
            Response::LocalData(vec![crate::LocalRecord::new("a", "192.0.2.1")].into()),
        );
        let set = b.build();
        assert_eq!(set.len(), 2);
        assert_eq!(show(&set, "a.example"), "a.example cname *.garden.example");
        assert_eq!(show(&set, "x.a.example"), "*.a.example local [A 192.0.2.1]");
    }

    #[test]
    fn splitting_keeps_every_rule() {
        let mut b = RuleSet::builder();
        let n = SHARD_TARGET * 5;
        for i in 0..n {
            b.insert_name(&trig(&format!("n{i}.example")), Response::Nxdomain);
        }
        let set = b.build();
        assert_eq!(set.shard_count(), 8);
        assert_eq!(set.len(), n);
        for i in (0..n).step_by(997) {
            assert_eq!(
                show(&set, &format!("n{i}.example")),
                format!("n{i}.example nxdomain")
            );
        }
        assert_eq!(set.rules().count(), n);
    }

    /// Found by the property test: an empty set has no label range yet, and the
    /// first delta must not leave the lookup probing beyond the query's labels.
    #[test]
    fn first_rules_by_delta_into_an_empty_set() {
        let empty = RuleSet::default();
        let delta = Delta {
            removed: vec![],
            added: vec![(ZoneTrigger::Qname(trig("*._g")), Response::Nxdomain)],
        };
        let set = empty.apply_delta(&delta).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(show(&set, "_g"), "-");
        assert_eq!(show(&set, "x._g"), "*._g nxdomain");
    }

    #[test]
    fn delta_then_compaction() {
        let mut b = RuleSet::builder();
        b.insert_name(&trig("a.example"), Response::Nxdomain);
        b.insert_name(&trig("*.a.example"), Response::Nxdomain);
        b.insert_name(&trig("b.example"), Response::Nxdomain);
        let set = b.build();
        let delta = Delta {
            removed: vec![ZoneTrigger::Qname(trig("a.example"))],
            added: vec![
                (ZoneTrigger::Qname(trig("c.example")), Response::Drop),
                (ZoneTrigger::Qname(trig("*.b.example")), Response::Nodata),
            ],
        };
        let next = set.apply_delta(&delta).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next.len(), 4);
        assert_eq!(show(&set, "a.example"), "a.example nxdomain");
        assert_eq!(show(&next, "a.example"), "-");
        assert_eq!(show(&next, "x.a.example"), "*.a.example nxdomain");
        assert_eq!(show(&next, "x.b.example"), "*.b.example nodata");
        assert_eq!(show(&next, "b.example"), "b.example nxdomain");
        assert_eq!(show(&next, "c.example"), "c.example drop");
        let compacted = next.compact_one().unwrap_or_else(|| panic!("no overlay"));
        assert_eq!(compacted.overlaid_shards(), 0);
        for name in [
            "a.example",
            "x.a.example",
            "x.b.example",
            "b.example",
            "c.example",
        ] {
            assert_eq!(show(&compacted, name), show(&next, name), "{name}");
        }
        let missing = Delta {
            removed: vec![ZoneTrigger::Qname(trig("a.example"))],
            added: vec![],
        };
        assert_eq!(
            next.apply_delta(&missing).err(),
            Some(DeltaError::Missing(ZoneTrigger::Qname(trig("a.example"))))
        );
        let present = Delta {
            removed: vec![],
            added: vec![(ZoneTrigger::Qname(trig("b.example")), Response::Drop)],
        };
        assert!(matches!(
            next.apply_delta(&present),
            Err(DeltaError::Present(_))
        ));
    }
}
