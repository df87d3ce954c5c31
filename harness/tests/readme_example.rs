//! The complete example in `scenarios/README.md` must be a valid scenario, so the
//! documentation cannot drift from the format.

use std::fs;
use std::path::Path;

use mqsim_harness::scenario::Scenario;

#[test]
fn the_readme_example_is_a_valid_scenario() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/README.md");
    let readme = fs::read_to_string(&path).expect("scenarios/README.md should exist");
    let start = readme
        .find("```yaml\n")
        .expect("the README should have a yaml example")
        + "```yaml\n".len();
    let length = readme[start..]
        .find("```")
        .expect("the yaml example should end");
    let example = &readme[start..start + length];
    let scenario = match Scenario::parse(example) {
        Ok(scenario) => scenario,
        Err(err) => panic!(
            "README example, line {} column {}: {}",
            err.line, err.column, err.message
        ),
    };
    // The example claims to cover every section; a few spot checks keep that honest.
    assert_eq!(scenario.spec.broker.destinations.len(), 3);
    assert_eq!(scenario.spec.faults.len(), 6);
    assert!(scenario.expect.counts.iter().count() >= 4);
    assert!(scenario.expect.metrics.iter().count() >= 2);
}
