//! What a check found, as the kubelet's probe results: a success, a
//! failure, or a warning, which passes as a success does but is reported
//! (the kubelet's ProbeWarning event). A forked network check reports its
//! verdict as its exit code and its message on its pipe.

/// A check's result and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success(String),
    Warning(String),
    Failure(String),
}

impl Verdict {
    /// The exit code a forked check reports the verdict with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Verdict::Success(_) => 0,
            Verdict::Failure(_) => 1,
            Verdict::Warning(_) => 2,
        }
    }

    /// The verdict a forked check reported with `code`; anything but 0 or
    /// 2 (a crash, a kill) is a failure.
    pub fn of_exit_code(code: Option<i32>, message: String) -> Verdict {
        match code {
            Some(0) => Verdict::Success(message),
            Some(2) => Verdict::Warning(message),
            _ => Verdict::Failure(message),
        }
    }

    /// Whether it counts as a success (a warning does).
    pub fn passed(&self) -> bool {
        !matches!(self, Verdict::Failure(_))
    }

    pub fn message(&self) -> &str {
        match self {
            Verdict::Success(m) | Verdict::Warning(m) | Verdict::Failure(m) => m,
        }
    }

    pub fn into_message(self) -> String {
        match self {
            Verdict::Success(m) | Verdict::Warning(m) | Verdict::Failure(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_survives_its_exit_code() {
        for v in [
            Verdict::Success("ok".to_owned()),
            Verdict::Warning("hm".to_owned()),
            Verdict::Failure("no".to_owned()),
        ] {
            let back = Verdict::of_exit_code(Some(v.exit_code()), v.message().to_owned());
            assert_eq!(back, v);
        }
        assert_eq!(
            Verdict::of_exit_code(None, "killed".to_owned()),
            Verdict::Failure("killed".to_owned())
        );
        assert_eq!(
            Verdict::of_exit_code(Some(3), String::new()),
            Verdict::Failure(String::new())
        );
        assert!(Verdict::Warning(String::new()).passed());
        assert!(!Verdict::Failure(String::new()).passed());
    }
}
