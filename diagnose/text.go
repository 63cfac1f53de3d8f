package diagnose

import (
	"fmt"
	"time"
)

// Small helpers of wording: defaults, clipping, durations and units.

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// UnitHours is the unit of evidence given in hours (certificate lifetimes).
const UnitHours = "h"

// clip shortens text for evidence, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// durationText writes a duration the way Istio's YAML does: "4s", "90s", "250ms", "1h".
func durationText(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return d.String()
}

// millis is a duration in milliseconds, for evidence.
func millis(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }
