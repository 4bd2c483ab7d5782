//! Property tests of normalisation: it is idempotent, and case or a trailing dot never
//! makes two spellings of one name into two indicators.

use indicator::{Domain, Hint, Indicator};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?"
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(label(), 1..5).prop_map(|ls| ls.join(".") + ".Example")
}

proptest! {
    #[test]
    fn domain_parse_is_idempotent(n in name()) {
        let d = Domain::parse(&n).map_err(|e| TestCaseError::fail(format!("{n}: {e}")))?;
        let again = Domain::parse(d.as_str()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&d, &again);
        let dotted = Domain::parse(&format!("{}.", n.to_uppercase()))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(d, dotted);
    }

    #[test]
    fn indicator_parse_is_idempotent(text in "\\PC{0,40}", hint in prop_oneof![
        Just(Hint::Any), Just(Hint::Domain), Just(Hint::Wildcard), Just(Hint::Url), Just(Hint::Ip), Just(Hint::Cidr)
    ]) {
        // Any text: either rejected, or normalised to a fixed point.
        if let Ok(i) = Indicator::parse(&text, hint) {
            let again = Indicator::parse(&i.to_string(), hint)
                .map_err(|e| TestCaseError::fail(format!("{text:?} -> {i} -> {e}")))?;
            prop_assert_eq!(i, again);
        }
    }

    #[test]
    fn url_parse_is_idempotent(host in name(), path in "(/[a-zA-Z0-9%._~-]{0,8}){0,3}", query in "(\\?[a-z0-9=&%]{0,10})?") {
        let text = format!("HTTP://{host}{path}{query}");
        if let Ok(i) = Indicator::parse(&text, Hint::Url) {
            let again = Indicator::parse(&i.to_string(), Hint::Url)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(i, again);
        }
    }
}
