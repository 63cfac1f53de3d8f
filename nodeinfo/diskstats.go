package nodeinfo

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// virtualDisk matches devices that are not disks: loop devices, RAM disks, floppies and CD-ROMs.
var virtualDisk = lazyregexp.New(`^(loop|ram|zram|fd|sr)\d*$`)

func (s *Sample) parseDiskstats(body string) error {
	var all []Disk
	bad := 0
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 14 {
			bad++
			continue
		}
		v, err := floats(f[3:14], 11)
		if err != nil {
			bad++
			continue
		}
		all = append(all, Disk{Name: f[2], Reads: v[0], ReadMs: v[3], Writes: v[4], WriteMs: v[7], IOTicksMs: v[9]})
	}
	names := map[string]bool{}
	for _, d := range all {
		names[d.Name] = true
	}
	kept := map[string]bool{}
	for _, d := range all {
		// A device name appears once in a real /proc/diskstats; a repeated one (a garbled or
		// concatenated read) keeps its first line, so two samples pair the same counters.
		if kept[d.Name] || virtualDisk.MatchString(d.Name) || isPartition(d.Name, names) {
			continue
		}
		kept[d.Name] = true
		s.Disks = append(s.Disks, d)
	}
	if bad > 0 {
		return fmt.Errorf("%d lines with fewer than 14 numeric fields skipped", bad)
	}
	return nil
}

// isPartition reports whether name is a partition of a whole disk in names: sda1 of sda,
// nvme0n1p2 of nvme0n1 (a disk name ending in a digit takes a "p" before the partition number).
func isPartition(name string, disks map[string]bool) bool {
	for i := len(name) - 1; i > 0; i-- {
		c := name[i]
		if c >= '0' && c <= '9' {
			continue
		}
		// name[:i+1] ends in a non-digit; name[i+1:] are the trailing digits.
		if i == len(name)-1 {
			return false
		}
		whole := name[:i+1]
		if disks[whole] && !endsInDigit(whole) {
			return true
		}
		if c == 'p' && disks[name[:i]] && endsInDigit(name[:i]) {
			return true
		}
		return false
	}
	return false
}

func endsInDigit(s string) bool { return s != "" && s[len(s)-1] >= '0' && s[len(s)-1] <= '9' }
