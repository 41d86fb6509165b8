//! One listing for the definitions that read the same request: several definitions with the
//! same `url`, `headers`, `basic_auth`, `next` and `max_pages`, in the same directory (where
//! `{file: ...}` credentials are read from), fetch the pages once per cycle and measure the
//! same answer (the shipped RabbitMQ meters all read `/api/queues`).
//!
//! The first definition of a cycle to ask fetches every page while the others wait; they reuse
//! that answer when its fetch began at most [`REUSE`] before they asked (definitions of one
//! cycle ask within milliseconds of each other). A failed fetch is shared too: the others
//! report the same error without asking the API again. A definition alone on its request
//! keeps reading page by page, holding one page at a time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::Value;

use crate::pollster::PollError;

/// How long before a definition asks a shared fetch may have begun for it to be reused.
pub const REUSE: Duration = Duration::from_millis(500);

/// Every page of one fetch, with the URL each came from.
pub type Pages = Vec<(Url, Value)>;

/// The shared requests of one load, by the request's identity (the definition's fields as
/// written: references to secrets, never the secrets).
#[derive(Debug, Default)]
pub struct PageShares(Mutex<BTreeMap<String, Arc<SharedPages>>>);

impl PageShares {
    /// The share of the request `identity`: the same one for every definition that names it.
    pub fn of(&self, identity: String) -> Arc<SharedPages> {
        let mut shares = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(shares.entry(identity).or_default())
    }
}

/// The last fetch of one shared request.
#[derive(Debug, Default)]
pub struct SharedPages(tokio::sync::Mutex<Option<Fetched>>);

#[derive(Debug)]
struct Fetched {
    began: Instant,
    pages: Result<Arc<Pages>, String>,
}

impl SharedPages {
    /// The pages of this cycle: those a fetch begun at most [`REUSE`] ago found, or those
    /// `fetch` finds now.
    pub async fn get<F>(&self, fetch: F) -> Result<Arc<Pages>, PollError>
    where
        F: Future<Output = Result<Pages, PollError>>,
    {
        let asked = Instant::now();
        let mut last = self.0.lock().await;
        if let Some(f) = last.as_ref().filter(|f| f.began + REUSE >= asked) {
            return f.pages.clone().map_err(PollError::Other);
        }
        let began = Instant::now();
        // A run dropped on its timeout while fetching releases the lock and stores nothing:
        // the next definition fetches for itself.
        let pages = fetch.await.map(Arc::new).map_err(|e| e.to_string());
        *last = Some(Fetched {
            began,
            pages: pages.clone(),
        });
        pages.map_err(PollError::Other)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn page(n: u64) -> Pages {
        vec![(
            Url::parse("http://127.0.0.1/api").expect("url"),
            Value::from(n),
        )]
    }

    #[tokio::test]
    async fn one_fetch_per_cycle_for_every_definition_of_a_request() {
        let shares = PageShares::default();
        let (a, b, other) = (
            shares.of("GET /api".into()),
            shares.of("GET /api".into()),
            shares.of("GET /other".into()),
        );
        assert!(Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &other));
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst) as u64;
            Ok(page(n))
        };
        let (first, second) = tokio::join!(a.get(fetch()), b.get(fetch()));
        assert_eq!(first.expect("pages"), second.expect("pages"));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        other.get(fetch()).await.expect("pages");
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "another request fetches");

        // The next cycle fetches again.
        tokio::time::sleep(REUSE + Duration::from_millis(50)).await;
        let later = a.get(fetch()).await.expect("pages");
        assert_eq!(later[0].1, Value::from(2));
    }

    #[tokio::test]
    async fn a_failed_fetch_is_the_same_failure_for_all() {
        let share = SharedPages::default();
        let failed = share
            .get(async { Err(PollError::Other("GET http://x/: HTTP status 503".into())) })
            .await;
        let again = share.get(async { Ok(page(1)) }).await;
        for e in [failed, again] {
            assert_eq!(
                e.expect_err("failed").to_string(),
                "GET http://x/: HTTP status 503"
            );
        }
    }
}
