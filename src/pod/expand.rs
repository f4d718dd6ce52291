//! Kubernetes' `$(VAR)` expansion of `command`, `args` and `env` values
//! (the kubelet's forked `third_party/forked/golang/expansion`):
//! `$(NAME)` becomes NAME's value when NAME is defined and stays as written
//! when it is not; `$$` is a literal `$` (so `$$(NAME)` gives `$(NAME)`);
//! any other `$`, and an unterminated `$(`, stay as written.

use std::collections::HashMap;

/// Expands `input` with the variables `lookup` knows.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match after.chars().next() {
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Resolves a container's `env` list in order: each value may refer to the
/// variables defined before it (and to `base`, e.g. the image's). Later
/// definitions of a name replace earlier ones. Returns name → value.
pub fn resolve_env(base: &[(String, String)], env: &[(String, String)]) -> Vec<(String, String)> {
    let mut values: HashMap<String, String> = base.iter().cloned().collect();
    let mut order: Vec<String> = base.iter().map(|(k, _)| k.clone()).collect();
    for (name, raw) in env {
        let value = expand(raw, |v| values.get(v).cloned());
        if !values.contains_key(name) {
            order.push(name.clone());
        }
        values.insert(name.clone(), value);
    }
    order
        .into_iter()
        .map(|k| {
            let v = values.get(&k).cloned().unwrap_or_default();
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_kubernetes_cases() {
        let vars = with(&[
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_EMPTY", ""),
        ]);
        for (input, expected) in [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("$(VAR_EMPTY)", ""),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$(VAR_B)", "$(VAR_B)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$(VAR_A", "$(VAR_A"),
            ("$()", "$()"),
            ("$", "$"),
            ("$$", "$"),
            ("f$", "f$"),
            ("$VAR_A", "$VAR_A"),
            ("$)", "$)"),
            ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
            ("$(日本)", "$(日本)"),
            ("$日本", "$日本"),
            ("", ""),
        ] {
            assert_eq!(expand(input, &vars), expected, "{input:?}");
        }
    }

    #[test]
    fn env_refers_to_what_came_before() {
        let base = [("PATH".to_owned(), "/bin".to_owned())];
        let env: Vec<(String, String)> = [
            ("A", "a"),
            ("B", "$(A)-b"),
            ("C", "$(D)"),
            ("D", "d"),
            ("PATH", "$(PATH):/opt"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let resolved = resolve_env(&base, &env);
        let get = |k: &str| {
            resolved
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("B"), Some("a-b"));
        // D is defined after C: C keeps the reference as written.
        assert_eq!(get("C"), Some("$(D)"));
        assert_eq!(get("PATH"), Some("/bin:/opt"));
        assert_eq!(resolved[0].0, "PATH");
    }
}
