//! [`Exclusions`]: the integration's excluded audit actions, matched exactly.

use std::collections::HashSet;

/// The audit actions an integration does not forward.
///
/// Matching is exact and case-sensitive on `data.action`, as the product page promises: `"User
/// login"` excludes `"User login"` and nothing else, not `"user login"` nor `"User login "`.
///
/// ```
/// use evo_siem_sender::Exclusions;
/// let excluded = Exclusions::new(["User login"]);
/// assert!(excluded.excludes("User login"));
/// assert!(!excluded.excludes("user login"));
/// assert!(!excluded.excludes("User login "));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    actions: HashSet<String>,
}

impl Exclusions {
    /// The exclusion list of an integration.
    pub fn new<S: Into<String>>(actions: impl IntoIterator<Item = S>) -> Self {
        Self {
            actions: actions.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether an event with this `data.action` must not be sent.
    pub fn excludes(&self, action: &str) -> bool {
        self.actions.contains(action)
    }

    /// How many actions are excluded.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The count an integration's `Debug` shows: each distinct action once.
    #[test]
    fn the_list_counts_each_action_once() {
        let excluded = Exclusions::new(["User login", "User logout", "User login"]);
        assert_eq!(excluded.len(), 2);
        assert!(!excluded.is_empty());
        let none = Exclusions::default();
        assert_eq!(none.len(), 0);
        assert!(none.is_empty());
        assert!(!none.excludes(""));
    }

    proptest! {
        /// Only the exact string is excluded: any case, whitespace or Unicode variant passes.
        #[test]
        fn only_exact_matches_are_excluded(action in "\\PC{1,20}", probe in "\\PC{0,21}") {
            let excluded = Exclusions::new([action.clone()]);
            prop_assert_eq!(excluded.excludes(&probe), probe == action);
            prop_assert!(excluded.excludes(&action));
            let upper = action.to_uppercase();
            prop_assert_eq!(excluded.excludes(&upper), upper == action);
            let padded = format!(" {action}");
            prop_assert!(!excluded.excludes(&padded));
        }
    }
}
