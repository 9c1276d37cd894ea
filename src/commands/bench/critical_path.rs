//! The critical path of one request at one processor, from the fake's call log: a lower
//! bound on how long its calls take at the vendor's documented concurrency, counted in steps
//! of the fakes' per-call latency L (`dsr bench fanout`).
//!
//! Each logged call gets
//! - a **limit key**: what the vendor's concurrency limit counts against, with that limit
//!   `c` — a Graph mailbox (4 in flight, Graph's documented limit), a Gmail user, a SuperOffice
//!   tenant, a Wix site (the limits in [`Limits`], as `docs/vendor-notes.md` gives them) — or
//!   no key, where no concurrency limit applies or the log does not say whose call it was
//!   (People calls do not name the user), and nothing stops the call overlapping all others;
//! - a **depth**: how many calls must have been answered before it can be sent at all,
//!   because it names something only an answer gives. A Graph path counts its ids
//!   (`messages/{id}` 1, `messages/{id}/attachments/{a}/$value` 2; well-known folder names
//!   are not ids), plus 1 for every mailbox when the directory listing (`GET /users`) is in
//!   the log, since that is where the mailbox ids came from; a Gmail message, a People
//!   contact, a SuperOffice person, a Wix contact read by id: 1; the i-th poll of one BigQuery
//!   job: i (each waits for the previous answer); searches and queries: 0.
//!
//! A call of depth d cannot start before d·L, and the calls of one key share `c` places, so
//! for each key and each depth d the calls of that key with depth ≥ d need at least
//! `d + ceil(n(≥d) / c)` steps; a call without a key needs `depth + 1`. The processor's
//! bound is the largest of these, and a request's is the largest over its processors (they
//! run side by side). Calls the fakes answer without the delay (token endpoints,
//! SuperOffice's login and tenant state) are left out.
//!
//! This is a lower bound, so wall time / bound is at least 1 (less only by timer noise), and
//! what is above 1 is time not spent waiting on the vendor at its limits: queue hops, the
//! ledger, the bundle, and calls that could have overlapped but did not. It is not tight: it
//! ignores rate limits (none binds within one request), and the pages of one listing,
//! which follow one another, count as independent calls because the log does not tell two
//! pages of one search from two searches.

use std::collections::{BTreeMap, HashMap};

use dsr_connector::Processor;

/// The concurrency limits the bound assumes, per limit key. Graph's is documented; Google,
/// SuperOffice and Wix document rates (quota units or requests per interval), not a number of
/// calls in flight, so these are the conservative limits the connectors use, kept equal to
/// the table in `docs/vendor-notes.md` ("Calls in parallel within a processor").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// "4 concurrent requests per app per mailbox":
    /// <https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits>
    pub graph_per_mailbox: usize,
    pub gmail_per_user: usize,
    pub superoffice_per_tenant: usize,
    pub wix_per_site: usize,
}

pub const DOCUMENTED: Limits = Limits {
    graph_per_mailbox: 4,
    // Google answers 429 for "a per-user concurrent request limit" without its number; the
    // connector keeps ten (`GMAIL_LIMITS` in connectors/google/src/client.rs).
    gmail_per_user: 10,
    superoffice_per_tenant: 4,
    wix_per_site: 4,
};

/// Where one call stands: its limit key (kind, which one, limit), and its depth.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    key: Option<(&'static str, String, usize)>,
    depth: u32,
}

/// The bound for one processor's calls, and what set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// Steps of L.
    pub steps: u32,
    /// Calls answered after the delay (the ones the bound counts).
    pub timed_calls: usize,
    /// Which key and depth gave `steps`, for a person checking the figure.
    pub because: String,
}

/// The lower bound for `calls`, one processor's log for one request, in steps of L.
pub fn lower_bound(processor: Processor, calls: &[String], limits: &Limits) -> Bound {
    let directory_listed = processor == Processor::Microsoft365 && calls.iter().any(|c| is_graph_directory(c));
    let mut seen: HashMap<&str, u32> = HashMap::new();
    let mut keyed: BTreeMap<(&'static str, String), (usize, Vec<u32>)> = BTreeMap::new();
    let mut best = Bound {
        steps: 0,
        timed_calls: 0,
        because: "no timed calls".into(),
    };
    for call in calls {
        let nth = {
            let n = seen.entry(call.as_str()).or_default();
            *n += 1;
            *n
        };
        let Some(placed) = place(processor, call, directory_listed, limits, nth) else {
            continue;
        };
        best.timed_calls += 1;
        match placed.key {
            Some((kind, which, limit)) => keyed
                .entry((kind, which))
                .or_insert((limit, vec![]))
                .1
                .push(placed.depth),
            None if placed.depth + 1 > best.steps => {
                best.steps = placed.depth + 1;
                best.because = format!("a call that must wait for {} others before it", placed.depth);
            }
            None => {}
        }
    }
    let mut ordinals: HashMap<&'static str, usize> = HashMap::new();
    for ((kind, _), (limit, mut depths)) in keyed {
        // Keys are named by kind and ordinal: a mailbox or user name is an employee's address.
        let ordinal = {
            let n = ordinals.entry(kind).or_default();
            *n += 1;
            *n
        };
        depths.sort_unstable();
        for (i, &depth) in depths.iter().enumerate() {
            if i > 0 && depths[i - 1] == depth {
                continue;
            }
            let waiting = depths.len() - i;
            let steps = depth + waiting.div_ceil(limit) as u32;
            if steps > best.steps {
                best.steps = steps;
                best.because = if depth == 0 {
                    format!("{kind} #{ordinal}: {waiting} calls, {limit} in flight")
                } else {
                    format!("{kind} #{ordinal}: {waiting} calls that wait for {depth} before them, {limit} in flight")
                };
            }
        }
    }
    best
}

fn is_graph_directory(call: &str) -> bool {
    let (_, path) = split(call);
    path.split('/').collect::<Vec<_>>() == ["users"]
}

/// The method and the path without a leading `/`, an API version or a query string.
fn split(call: &str) -> (&str, &str) {
    let (method, rest) = call.split_once(' ').unwrap_or(("", call));
    let rest = rest.split('?').next().unwrap_or(rest).trim_start_matches('/');
    let rest = rest
        .strip_prefix("v1.0/")
        .or_else(|| rest.strip_prefix("beta/"))
        .unwrap_or(rest);
    (method, rest)
}

/// Graph's well-known folder names: usable without asking for the folder first.
const GRAPH_WELL_KNOWN: &[&str] = &[
    "inbox",
    "deleteditems",
    "drafts",
    "sentitems",
    "junkemail",
    "archive",
    "outbox",
    "msgfolderroot",
    "recoverableitemsdeletions",
    "clutter",
    "conversationhistory",
    "searchfolders",
    "scheduled",
];

/// Where `call` stands, or `None` for a call the fake answers without the delay. `nth`: how
/// many times this exact call has been logged so far, this one included.
fn place(processor: Processor, call: &str, directory_listed: bool, limits: &Limits, nth: u32) -> Option<Placed> {
    let (method, path) = split(call);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let free = |depth| Placed { key: None, depth };
    Some(match processor {
        // The benchmarks run the four vendors' fakes only.
        Processor::OpenDsr(_) => free(0),
        Processor::Microsoft365 => match segments.as_slice() {
            ["users", user, rest @ ..] => {
                let ids = rest
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .filter(|s| !s.starts_with('$') && !GRAPH_WELL_KNOWN.contains(&s.to_ascii_lowercase().as_str()))
                    .count() as u32;
                Placed {
                    key: Some(("mailbox", user.to_string(), limits.graph_per_mailbox)),
                    depth: u32::from(directory_listed) + ids,
                }
            }
            _ => free(0),
        },
        Processor::Google => {
            if let Some(rest) = path.strip_prefix("gmail ") {
                let (user, resource) = rest.split_once('/').unwrap_or((rest, ""));
                let depth = u32::from(resource.split('/').filter(|s| !s.is_empty()).count() > 1);
                Placed {
                    key: Some(("Gmail user", user.to_string(), limits.gmail_per_user)),
                    depth,
                }
            } else {
                match segments.as_slice() {
                    // The i-th poll of one job waits for the answer to the one before.
                    ["projects", _, "queries", _job] if method == "GET" => free(nth),
                    ["people", id] if *id != "me" && !id.starts_with(':') => free(1),
                    _ => free(0),
                }
            }
        }
        Processor::Superoffice => {
            if path.starts_with("PartnerSystemUser/") || path.starts_with("oauth/") || path.starts_with("api/state/") {
                return None;
            }
            match segments.as_slice() {
                [tenant, rest @ ..] => Placed {
                    key: Some(("SuperOffice tenant", tenant.to_string(), limits.superoffice_per_tenant)),
                    depth: u32::from(rest.len() > 1),
                },
                [] => free(0),
            }
        }
        Processor::Wix => {
            if path.starts_with("oauth2/") {
                return None;
            }
            let by_id = match segments.as_slice() {
                [_, last, ..] => !matches!(*last, "query" | "query-cursor" | "namespace"),
                _ => false,
            };
            Placed {
                key: Some(("Wix site", String::new(), limits.wix_per_site)),
                depth: u32::from(by_id),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn graph_mailbox_calls_share_four_places_after_the_directory_and_the_search() {
        let mut log = calls(&["GET /v1.0/users", "GET /v1.0/users/u1/messages"]);
        for i in 0..8 {
            log.push(format!("GET /v1.0/users/u1/messages/m{i}"));
        }
        log.push("GET /v1.0/users/u1/messages/m0/attachments".into());
        log.push("GET /v1.0/users/u1/messages/m0/attachments/a0/$value".into());
        log.push("GET /v1.0/users/u1/mailFolders/deleteditems/messages".into());
        let bound = lower_bound(Processor::Microsoft365, &log, &DOCUMENTED);
        assert_eq!(bound.timed_calls, 13);
        // Depth ≥ 2 (after the directory and the search): 8 reads, the attachment list and
        // the download (depth 3): 2 + ceil(10 / 4) = 5. The whole mailbox: 1 + ceil(12 / 4) = 4.
        assert_eq!(bound.steps, 5, "{}", bound.because);
        assert!(bound.because.contains("mailbox #1"), "{}", bound.because);
        assert!(!bound.because.contains("u1"), "no mailbox names: {}", bound.because);
    }

    #[test]
    fn two_mailboxes_overlap_and_so_do_processors_without_a_key() {
        let log = calls(&[
            "GET /v1.0/users/a/messages",
            "GET /v1.0/users/b/messages",
            "GET /v1.0/users/a/messages/1",
            "GET /v1.0/users/b/messages/2",
        ]);
        assert_eq!(lower_bound(Processor::Microsoft365, &log, &DOCUMENTED).steps, 2);
        let google = calls(&[
            "GET properties/123",
            "POST projects/p/queries",
            "GET projects/p/queries/job1",
            "GET projects/p/queries/job1",
            "GET projects/p/queries/job1",
            "GET people:searchContacts",
            "GET people/c42",
        ]);
        let bound = lower_bound(Processor::Google, &google, &DOCUMENTED);
        assert_eq!(bound.steps, 4, "the third poll of one job: {}", bound.because);
    }

    #[test]
    fn untimed_token_calls_are_left_out() {
        let so = calls(&[
            "POST PartnerSystemUser/Authenticate",
            "POST oauth/tokens",
            "GET api/state/Cust1",
            "GET Cust1/Person",
            "GET Cust1/Person/5",
            "GET Cust1/Person/5/Sale",
        ]);
        let bound = lower_bound(Processor::Superoffice, &so, &DOCUMENTED);
        assert_eq!((bound.timed_calls, bound.steps), (3, 2));
        let wix = calls(&[
            "POST oauth2/token",
            "POST contacts/query",
            "POST members/query",
            "POST submissions/namespace/query",
            "POST comments/query-cursor",
            "POST email-subscriptions/query",
            "GET contacts/abc",
        ]);
        let bound = lower_bound(Processor::Wix, &wix, &DOCUMENTED);
        // Six calls at four in flight: 2; the contact read after its query: 1 + 1.
        assert_eq!((bound.timed_calls, bound.steps), (6, 2));
        let gmail = calls(&[
            "GET gmail kari@x/messages",
            "GET gmail kari@x/messages/1 format=raw",
            "GET gmail kari@x/messages/2 format=raw",
        ]);
        assert_eq!(lower_bound(Processor::Google, &gmail, &DOCUMENTED).steps, 2);
        assert_eq!(lower_bound(Processor::Wix, &[], &DOCUMENTED).steps, 0);
    }
}
