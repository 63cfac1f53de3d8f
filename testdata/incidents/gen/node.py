"""Node evidence of the incidents: what `tail -n +1` over the probe's files prints in the sidecar
(nodeinfo.ProbeCommand with root "/"), at the two samples of the window.

GNU tail's format: a "==> PATH <==" header before each file, a blank line between files; files
that do not exist (the cgroup v1 paths on these cgroup v2 nodes) are left out, as tail only
complains about them on stderr. The node is a 4-CPU kind worker (USER_HZ 100), up since 3 days;
the second sample is the first plus what happened in the window, so rates are exact.
"""
import world as w

CPUS = 4
HZ = 100
NODE_UPTIME = 3 * 86400
WINDOW_JIFFIES = CPUS * HZ * w.WINDOW

# Shares of CPU time (percent) of a quiet node, over the window and since boot.
QUIET = {"user": 18, "nice": 0, "system": 6, "irq": 0.5, "softirq": 1, "iowait": 0.5, "steal": 0.3}

SEED_SYSCTLS = [
    ("fs/file-max", "2097152"),
    ("net/ipv4/tcp_tw_reuse", "1"),
    ("net/ipv4/ip_local_port_range", "1024\t65535"),
    ("net/ipv4/tcp_keepalive_time", "600"),
    ("net/ipv4/tcp_keepalive_intvl", "60"),
    ("net/ipv4/tcp_keepalive_probes", "3"),
    ("net/core/somaxconn", "4096"),
]


def jiffies(shares, total):
    cols = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    busy = {k: int(total * shares.get(k, 0) / 100) for k in cols if k != "idle"}
    busy["idle"] = total - sum(busy.values())
    return [busy[c] for c in cols]


def stat_file(cols, sample):
    per_cpu = [[c // CPUS + (1 if i < c % CPUS else 0) for c in cols] for i in range(CPUS)]
    lines = ["cpu  " + " ".join(str(c) for c in cols) + " 0 0"]
    for i, pc in enumerate(per_cpu):
        lines.append(f"cpu{i} " + " ".join(str(c) for c in pc) + " 0 0")
    ctxt = 981234567 + sample * 412345
    lines += ["intr 1843223419 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
              f"ctxt {ctxt}", "btime 1713016931", f"processes {2841233 + sample * 97}",
              "procs_running 3", "procs_blocked 0",
              "softirq 412345678 0 98765432 123 87654321 1234567 0 2345678 98765432 0 123456789"]
    return "\n".join(lines) + "\n"


def diskstats(disk):
    """disk: reads, read_ms, writes, write_ms, io_ticks of nvme0n1 (its partition p1 holds
    nearly all of it)."""
    r, rms, wr, wms, ticks = disk
    def line(major, minor, name, r, rms, wr, wms, ticks):
        return (f" {major:>3} {minor:>7} {name} {r} {r // 9} {r * 64} {rms} {wr} {wr // 3} {wr * 24} {wms} 0 "
                f"{ticks} {rms + wms} 0 0 0 0 {wr // 50} {wr // 25}")
    return "\n".join([
        line(7, 0, "loop0", 41, 0, 0, 0, 12),
        line(259, 0, "nvme0n1", r, rms, wr, wms, ticks),
        line(259, 1, "nvme0n1p1", r - 40, rms - 12, wr, wms, ticks - 10),
    ]) + "\n"


def psi(some, full=None):
    """some/full: (avg10, avg60, avg300, total_usec)."""
    out = "some avg10={:.2f} avg60={:.2f} avg300={:.2f} total={}\n".format(*some)
    f = full or (0, 0, 0, 0)
    return out + "full avg10={:.2f} avg60={:.2f} avg300={:.2f} total={}\n".format(*f)


def cgroup(c):
    """c: usage_usec, nr_periods, nr_throttled, throttled_usec of istio-proxy's cgroup."""
    usage, periods, throttled, t_us = c
    return (f"usage_usec {usage}\nuser_usec {usage * 2 // 3}\nsystem_usec {usage - usage * 2 // 3}\n"
            f"core_sched.force_idle_usec 0\nnr_periods {periods}\nnr_throttled {throttled}\n"
            f"throttled_usec {t_us}\nnr_bursts 0\nburst_usec 0\n")


def probe(sample, shares=None, window_shares=None, disk=(1841233, 912345, 7412345, 4023456, 3312345),
          disk_delta=(120, 70, 450, 270, 300), io_psi=((0.12, 0.10, 0.08, 81234567), (0.00, 0.02, 0.01, 31234567)),
          io_psi_delta=(3000, 1000), cpu_psi=((1.20, 1.05, 0.98, 2812345678), None), cpu_psi_delta=120000,
          proxy_cgroup=(81234567, 2543210, 1043, 8123456), proxy_cgroup_delta=(61234, 100, 0, 0),
          file_nr=(4128, 2097152), conntrack=(1843, 131072), sysctls=None):
    """The probe's output at sample 0 or 1. Counters at sample 0 are since boot (the quiet
    shares); sample 1 adds the window's (window_shares, *_delta)."""
    shares = shares or QUIET
    window_shares = window_shares or shares
    base = jiffies(shares, CPUS * HZ * NODE_UPTIME)
    cols = base if sample == 0 else [a + b for a, b in zip(base, jiffies(window_shares, WINDOW_JIFFIES))]
    d = disk if sample == 0 else tuple(a + b for a, b in zip(disk, disk_delta))
    io_some, io_full = io_psi
    if sample:
        io_some = io_some[:3] + (io_some[3] + io_psi_delta[0],)
        io_full = io_full[:3] + (io_full[3] + io_psi_delta[1],)
    cpu_some = cpu_psi[0] if not sample else cpu_psi[0][:3] + (cpu_psi[0][3] + cpu_psi_delta,)
    cg = proxy_cgroup if not sample else tuple(a + b for a, b in zip(proxy_cgroup, proxy_cgroup_delta))
    files = [
        ("/proc/stat", stat_file(cols, sample)),
        ("/proc/diskstats", diskstats(d)),
        ("/proc/pressure/cpu", psi(cpu_some, cpu_psi[1])),
        ("/proc/pressure/io", psi(io_some, io_full)),
        ("/proc/pressure/memory", psi((0, 0, 0, 412345), (0, 0, 0, 301234))),
        ("/sys/fs/cgroup/cpu.stat", cgroup(cg)),
        ("/proc/sys/fs/file-nr", f"{file_nr[0] + 8 * sample}\t0\t{file_nr[1]}\n"),
        ("/proc/sys/net/netfilter/nf_conntrack_count", f"{conntrack[0]}\n"),
        ("/proc/sys/net/netfilter/nf_conntrack_max", f"{conntrack[1]}\n"),
    ]
    for path, value in (sysctls or SEED_SYSCTLS):
        files.append(("/proc/sys/" + path, value + "\n"))
    return "\n".join(f"==> {p} <==\n{body}" for p, body in files)


def node_files(**kw):
    return {"node.txt": probe(0, **kw), "node-2.txt": probe(1, **kw)}
