//! Shrinking a failing variation with proptest's value trees: the tree of the failing seed's
//! draw is simplified step by step (faults removed one at a time, consumer counts and the
//! rate lowered), each candidate is run, and a step is kept only if the run still fails the
//! same way; a step that passes is undone (`complicate`). This is proptest's own shrinking
//! loop, driven here because each test case is a whole simulation and the loop needs a bound
//! in runs.

use proptest::strategy::ValueTree;

use super::Variation;

/// The simplest variation found that `still_fails`, and the runs tried, at most `max_runs`.
/// The tree's current value must be a failing variation.
pub fn shrink(
    mut tree: Box<dyn ValueTree<Value = Variation>>,
    max_runs: u32,
    mut still_fails: impl FnMut(&Variation) -> bool,
) -> (Variation, u32) {
    let mut smallest = tree.current();
    let mut runs = 0;
    if !tree.simplify() {
        return (smallest, runs);
    }
    while runs < max_runs {
        let candidate = tree.current();
        runs += 1;
        if still_fails(&candidate) {
            smallest = candidate;
            if !tree.simplify() {
                break;
            }
        } else if !tree.complicate() {
            break;
        }
    }
    (smallest, runs)
}

#[cfg(test)]
mod tests {
    use super::shrink;
    use crate::explore::{strategy, tree};
    use crate::scenario::{ExploreDoc, Scenario};

    const DOC: &str = "name: s\ndescription: d\nduration: 1s\nbroker: {destinations: [{name: q}]}\n\
        producers: [{destination: q}]\nconsumers: [{destination: q, count: 4}]\n\
        explore: {max_faults: 8}\n";

    fn doc() -> crate::scenario::ScenarioDoc {
        Scenario::parse(DOC).unwrap().doc
    }

    // A stand-in for "the run fails": at least two faults and at least two consumers. Shrinking
    // must reach exactly that boundary, since every simpler candidate passes.
    #[test]
    fn shrinks_to_the_smallest_failing_variation() {
        let doc = doc();
        let bounds = doc.explore.clone().unwrap();
        let fails =
            |v: &crate::explore::Variation| v.faults.len() >= 2 && v.consumer_counts[0] >= 2;
        let seed = (0..1000)
            .find(|s| fails(&tree(&doc, &bounds, *s).unwrap().current()))
            .expect("some seed draws a failing variation");
        let (small, runs) = shrink(tree(&doc, &bounds, seed).unwrap(), 1000, fails);
        assert_eq!(small.faults.len(), 2);
        assert_eq!(small.consumer_counts, vec![2]);
        assert_eq!(
            small.rate_permille, 500,
            "the rate shrinks to the lowest factor"
        );
        assert!(runs > 0 && runs < 1000);
        // The bound on runs holds.
        let (_, runs) = shrink(tree(&doc, &bounds, seed).unwrap(), 3, fails);
        assert_eq!(runs, 3);
    }

    #[test]
    fn the_same_seed_draws_the_same_variation() {
        let doc = doc();
        let bounds: ExploreDoc = doc.explore.clone().unwrap();
        let draws: Vec<_> = (0..20)
            .map(|s| tree(&doc, &bounds, s).unwrap().current())
            .collect();
        let again: Vec<_> = (0..20)
            .map(|s| tree(&doc, &bounds, s).unwrap().current())
            .collect();
        assert_eq!(draws, again);
        assert!(draws.windows(2).any(|w| w[0] != w[1]), "seeds differ");
        // Draws stay within bounds.
        for v in &draws {
            assert!(v.faults.len() <= 8);
            assert!((1..=4).contains(&v.consumer_counts[0]));
            assert!((500..=1000).contains(&v.rate_permille));
            assert!(
                v.faults
                    .iter()
                    .all(|f| f.at_ms < 1000 && (1..=250).contains(&f.length_ms))
            );
        }
        let _ = strategy(&doc, &bounds);
    }
}
