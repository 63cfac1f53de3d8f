package diagnose

import (
	"math"
	"slices"
)

// sortedKeys returns a map's keys in order, so output never depends on map iteration.
func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// round rounds to a number of decimals for display in evidence.
func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}
