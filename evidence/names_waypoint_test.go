package evidence

import "testing"

func TestKnownWaypointNames(t *testing.T) {
	for name, want := range map[string]bool{
		"waypoint-stats.prom":       true,
		"waypoint-config_dump.json": true,
		"waypoint-meta.json":        true,
		"waypoint-ztunnel.log":      false, // a waypoint has no ztunnel files of its own
		"waypoint-notes.txt":        false,
		"waypoint-../stats.prom":    false,
		"stats.prom":                true,
	} {
		if got := Known(name); got != want {
			t.Errorf("Known(%q) = %v, want %v", name, got, want)
		}
	}
}
