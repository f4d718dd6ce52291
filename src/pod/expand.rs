//! Kubernetes' `$(VAR)` expansion of `command`, `args` and `env` values
//! (the kubelet's forked `third_party/forked/golang/expansion`):
//! `$(NAME)` becomes NAME's value when NAME is defined and stays as written
//! when it is not; `$$` is a literal `$` (so `$$(NAME)` gives `$(NAME)`);
//! any other `$`, and an unterminated `$(`, stay as written.

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
}
