//! The kubelet's conversions from requests and limits to cgroup v2 file
//! values (`pkg/kubelet/cm/helpers_linux.go`, runc's shares → weight).

pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
const SHARES_PER_CPU: u128 = 1024;
pub const QUOTA_PERIOD: u64 = 100_000;
const MIN_QUOTA: u64 = 1000;

/// `MilliCPUToShares`: 0 → 2; else millis·1024/1000 clamped to [2, 262144].
pub fn milli_cpu_to_shares(millis: u128) -> u64 {
    if millis == 0 {
        return MIN_SHARES;
    }
    let shares = millis * SHARES_PER_CPU / 1000;
    shares.clamp(u128::from(MIN_SHARES), u128::from(MAX_SHARES)) as u64
}

/// `MilliCPUToQuota` with the default period: 0 means no quota.
pub fn milli_cpu_to_quota(millis: u128) -> u64 {
    if millis == 0 {
        return 0;
    }
    let quota = millis * u128::from(QUOTA_PERIOD) / 1000;
    quota.clamp(u128::from(MIN_QUOTA), u128::from(u64::MAX)) as u64
}

/// Shares → `cpu.weight`, the conversion crun and runc ≥ 1.3.2 use: a
/// quadratic in log2(shares) that maps 2 → 1, 1024 → 100, 262144 → 10000.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares <= MIN_SHARES {
        return 1;
    }
    if shares >= MAX_SHARES {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

/// The `cpu.max` line for a quota (0 = unlimited) with the default period.
pub fn cpu_max(quota: u64) -> String {
    if quota == 0 {
        format!("max {QUOTA_PERIOD}")
    } else {
        format!("{quota} {QUOTA_PERIOD}")
    }
}

/// A `memory.max` / `pids.max` style value: 0 = no limit = `max`.
pub fn max_or(value: u128) -> String {
    if value == 0 {
        "max".to_owned()
    } else {
        value.to_string()
    }
}

/// The size part of a `hugetlb.<size>.max` file name, as the kubelet and
/// runc spell it: 2 MiB → `2MB`, 1 GiB → `1GB`, 64 KiB → `64KB`.
pub fn hugetlb_size_name(bytes: u64) -> String {
    let kb = bytes / 1024;
    if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_kubelet() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2); // 1·1024/1000 = 1 → raised to 2
        assert_eq!(milli_cpu_to_shares(100), 102); // 102400/1000
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), 262_144);
    }

    #[test]
    fn quota_follows_the_kubelet() {
        assert_eq!(milli_cpu_to_quota(0), 0);
        assert_eq!(milli_cpu_to_quota(5), 1000); // 500 raised to the 1000 minimum
        assert_eq!(milli_cpu_to_quota(1200), 120_000);
        assert_eq!(cpu_max(0), "max 100000");
        assert_eq!(cpu_max(120_000), "120000 100000");
    }

    #[test]
    fn weight_matches_runc_and_crun() {
        // Reference points from the conversion's definition and runc's tests.
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(3), 2);
        assert_eq!(shares_to_weight(102), 17);
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(2048), 174);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn hugetlb_names() {
        assert_eq!(hugetlb_size_name(2 << 20), "2MB");
        assert_eq!(hugetlb_size_name(1 << 30), "1GB");
        assert_eq!(hugetlb_size_name(64 << 10), "64KB");
    }
}
