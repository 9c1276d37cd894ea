//! A Graph that misbehaves without end: listings whose next link never moves on, and answers
//! of a gigabyte. The task fails with a code and a message naming the endpoint, quickly, and
//! the worker's memory stays bounded. (A test binary of its own, so the peak memory measured
//! is this file's.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use dsr_fixtures::faults::{HugeBody, PeakMemory};

const GIB: u64 = 1 << 30;

/// Memory a worker may grow by while refusing a gigabyte: the 32 MiB read before it stops,
/// with room for the allocator and the runtime, and far from the gigabyte.
const BOUND: u64 = 256 << 20;

#[tokio::test]
async fn a_listing_that_repeats_its_next_link_fails_the_task_at_once() {
    let s = setup("").await;
    s.fake.with(|st| st.faults.repeat_page_token = true);
    let started = Instant::now();
    let err = access_of(&s.connector, KARI).await.unwrap_err();
    assert_eq!(err.code(), "permanent:paging_stuck", "{err}");
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("/v1.0/users"),
        "names the listing that is stuck: {err}"
    );
    let listed = s
        .fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("GET /v1.0/users"))
        .count();
    assert_eq!(listed, 2, "stopped at the first repeated link: {:?}", s.fake.calls());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

    let err = erase(&s, dsr_connector::SharedPolicy::Retain, true).await.unwrap_err();
    assert_eq!(err.code(), "permanent:paging_stuck", "a plan stops the same way: {err}");
}

#[tokio::test]
async fn a_gigabyte_answer_fails_as_too_large_within_seconds_and_memory_stays_bounded() {
    let s = setup("").await;
    let memory = PeakMemory::start().unwrap();
    let started = Instant::now();

    // A 200 whose body does not end (chunked: its length is not announced).
    s.fake.with(|st| st.faults.huge_body = Some(HugeBody::ok(GIB)));
    let err = access_of(&s.connector, KARI).await.unwrap_err();
    assert_eq!(err.code(), "permanent:response_too_large", "{err}");
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("/v1.0/users") && err.to_string().contains("32 MiB"),
        "names the endpoint and the limit: {err}"
    );

    // The same announced by Content-Length: refused before a byte of it is read.
    s.fake.with(|st| {
        st.faults.huge_body = Some(HugeBody {
            announce_length: true,
            ..HugeBody::ok(GIB)
        })
    });
    let err = access_of(&s.connector, KARI).await.unwrap_err();
    assert_eq!(err.code(), "permanent:response_too_large", "{err}");

    // An error page without end: its first 2 KiB are read for the vendor's words, no more,
    // on each of the call's tries.
    s.fake.with(|st| {
        st.faults.huge_body = Some(HugeBody {
            status: 503,
            ..HugeBody::ok(GIB)
        })
    });
    let err = access_of(&s.connector, KARI).await.unwrap_err();
    assert_eq!(err.code(), "retry_later:503", "{err}");

    let elapsed = started.elapsed();
    let growth = memory.growth().unwrap();
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert!(
        growth < BOUND,
        "peak memory grew by {} MiB refusing three gigabyte answers",
        growth >> 20
    );
    println!(
        "three 1 GiB answers refused in {elapsed:?}; peak memory grew by {} MiB",
        growth >> 20
    );

    // The vendor mended, the same connector works again.
    s.fake.with(|st| st.faults.huge_body = None);
    access_of(&s.connector, KARI).await.unwrap();
}
