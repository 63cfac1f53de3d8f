package nodeinfo

import "math"

// Interval is what happened between two samples, Seconds apart: the rates a diagnosis judges.
// A part is nil when either sample lacks it or its counters went backwards (a reboot, another
// container's cgroup).
type Interval struct {
	Seconds float64
	CPU     *CPUInterval
	Disks   []DiskInterval
	Cgroup  *CgroupInterval
	// Pressure is the share of the interval tasks stalled, per resource, from the PSI totals.
	Pressure map[string]PressureInterval
}

// CPUInterval is the node's CPU time over the interval, in percent of all CPUs' time.
type CPUInterval struct {
	StealPct, IOWaitPct, BusyPct float64
	// Jiffies is the CPU time accounted over the interval, all CPUs together.
	Jiffies float64
}

// DiskInterval is one device over the interval.
type DiskInterval struct {
	Name string
	// IOs is the number of reads and writes completed.
	IOs float64
	// AwaitMs is the average time an I/O took, queueing included (what iostat calls await).
	AwaitMs float64
	// UtilPct is the share of the interval the device had I/O in flight.
	UtilPct float64
}

// CgroupInterval is a container's CFS throttling over the interval.
type CgroupInterval struct {
	Periods, Throttled float64
	// ThrottledRatio is Throttled / Periods: the share of 100 ms periods in which the container
	// used up its quota and waited.
	ThrottledRatio float64
	// ThrottledPerSecond is the seconds spent throttled per second of wall time (summed over
	// the container's threads, so it can exceed 1).
	ThrottledPerSecond float64
}

// PressureInterval is a PSI resource over the interval.
type PressureInterval struct {
	// SomePct is the share of the interval at least one task stalled, from the "some" totals.
	SomePct float64
	// Avg10 is the kernel's 10-second average at the second sample.
	Avg10 float64
}

// NewInterval pairs two samples taken seconds apart. It returns nil when seconds is not positive.
func NewInterval(a, b *Sample, seconds float64) *Interval {
	if a == nil || b == nil || !(seconds > 0) || math.IsInf(seconds, 0) {
		return nil
	}
	iv := &Interval{Seconds: seconds, Pressure: map[string]PressureInterval{}}
	if a.CPU != nil && b.CPU != nil {
		total := b.CPU.Total() - a.CPU.Total()
		d := func(x, y float64) float64 { return y - x }
		steal, iowait := d(a.CPU.Steal, b.CPU.Steal), d(a.CPU.IOWait, b.CPU.IOWait)
		idle := d(a.CPU.Idle, b.CPU.Idle)
		if total > 0 && steal >= 0 && iowait >= 0 && idle >= 0 {
			iv.CPU = &CPUInterval{
				StealPct: 100 * steal / total, IOWaitPct: 100 * iowait / total,
				BusyPct: 100 * (total - idle - iowait - steal) / total, Jiffies: total,
			}
		}
	}
	before := map[string]Disk{}
	for _, d := range a.Disks {
		before[d.Name] = d
	}
	for _, d := range b.Disks {
		p, ok := before[d.Name]
		if !ok {
			continue
		}
		ios := d.Reads + d.Writes - p.Reads - p.Writes
		ms := d.ReadMs + d.WriteMs - p.ReadMs - p.WriteMs
		ticks := d.IOTicksMs - p.IOTicksMs
		if ios < 0 || ms < 0 || ticks < 0 {
			continue
		}
		di := DiskInterval{Name: d.Name, IOs: ios, UtilPct: math.Min(100, 100*ticks/(seconds*1000))}
		if ios > 0 {
			di.AwaitMs = ms / ios
		}
		iv.Disks = append(iv.Disks, di)
	}
	if ca, cb := a.Cgroup, b.Cgroup; ca != nil && cb != nil && ca.Version == cb.Version {
		periods, thr, us := cb.Periods-ca.Periods, cb.Throttled-ca.Throttled, cb.ThrottledUsec-ca.ThrottledUsec
		if periods >= 0 && thr >= 0 && us >= 0 && thr <= periods {
			c := &CgroupInterval{Periods: periods, Throttled: thr, ThrottledPerSecond: us / 1e6 / seconds}
			if periods > 0 {
				c.ThrottledRatio = thr / periods
			}
			iv.Cgroup = c
		}
	}
	for res, pb := range b.Pressure {
		pa, ok := a.Pressure[res]
		if !ok || pa.Some == nil || pb.Some == nil {
			continue
		}
		stall := pb.Some.TotalUsec - pa.Some.TotalUsec
		if stall < 0 {
			continue
		}
		iv.Pressure[res] = PressureInterval{SomePct: math.Min(100, 100*stall/(seconds*1e6)), Avg10: pb.Some.Avg10}
	}
	return iv
}
