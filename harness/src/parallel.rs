//! Independent simulations on several threads, with results in input order.
//!
//! Each simulation is single-threaded and deterministic and shares nothing with the others,
//! so running them at once changes only when each finishes. Results are filed by index, so
//! whatever is built from them (tables, summaries, exit codes) does not depend on `jobs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Applies `work` to every item on up to `jobs` threads and returns the results in the
/// items' order. `done(k, &result)` is called on this thread as each result arrives (in
/// completion order), for progress output; an error from it stops the waiting and is
/// returned once the workers are done.
pub fn map<T, R, E>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> R + Sync,
    mut done: impl FnMut(usize, &R) -> Result<(), E>,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
{
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let next = AtomicUsize::new(0);
    let workers = jobs.clamp(1, items.len().max(1));
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| -> Result<(), E> {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(k) else { break };
                    if tx.send((k, work(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (k, result) in rx.iter() {
            if let Err(e) = done(k, &result) {
                // Stop the workers taking more: they see no next item.
                next.store(items.len(), Ordering::Relaxed);
                return Err(e);
            }
            results[k] = Some(result);
        }
        Ok(())
    })?;
    // Every index was sent exactly once unless a worker panicked, which the scope re-raises.
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_back_in_input_order_whatever_the_jobs() {
        let items: Vec<u64> = (0..50).collect();
        for jobs in [1, 2, 7, 100] {
            let mut seen = 0;
            let out = super::map(
                &items,
                jobs,
                |x| x * x,
                |_, _| -> Result<(), ()> {
                    seen += 1;
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
            assert_eq!(seen, items.len());
        }
        let empty: Vec<u64> = Vec::new();
        assert!(
            super::map(&empty, 4, |x| *x, |_, _| Ok::<(), ()>(()))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_error_from_progress_stops_the_map() {
        let items: Vec<u64> = (0..10).collect();
        let r = super::map(
            &items,
            2,
            |x| *x,
            |_, &x| if x == 3 { Err(x) } else { Ok(()) },
        );
        assert_eq!(r, Err(3));
    }
}
