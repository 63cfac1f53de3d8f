package install

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultVersion is the Istio release installed without --version: the newest patch release
// whose supported Kubernetes versions are known here.
const DefaultVersion = "1.30.4"

// Release is an Istio minor release and the Kubernetes minor versions it supports.
type Release struct {
	Minor                      string
	MinKubeMinor, MaxKubeMinor int
}

// releases are Istio's supported Kubernetes versions per release, from istio.io's support
// status table (data/compatibility/supportStatus.yml), newest first.
var releases = []Release{
	{"1.30", 32, 36},
	{"1.29", 31, 35},
	{"1.28", 30, 34},
	{"1.27", 29, 33},
	{"1.26", 29, 33},
	{"1.25", 29, 32},
}

// ReleaseOf returns the Istio release of a version ("1.30.4" is 1.30), false when its
// supported Kubernetes versions are not known here.
func ReleaseOf(version string) (Release, bool) {
	major, minor, err := minorOf(version)
	if err != nil {
		return Release{}, false
	}
	for _, r := range releases {
		if r.Minor == fmt.Sprintf("%d.%d", major, minor) {
			return r, true
		}
	}
	return Release{}, false
}

// Supports reports whether a Kubernetes minor version (33 for 1.33) is in the release's range.
func (r Release) Supports(kubeMinor int) bool {
	return kubeMinor >= r.MinKubeMinor && kubeMinor <= r.MaxKubeMinor
}

// Range is the release's Kubernetes range as Istio writes it ("1.32 to 1.36").
func (r Release) Range() string { return fmt.Sprintf("1.%d to 1.%d", r.MinKubeMinor, r.MaxKubeMinor) }

// minorOf reads "1.30.4" (or "1.30", with or without a leading v) as major 1, minor 30.
func minorOf(version string) (major, minor int, err error) {
	parts := strings.Split(strings.TrimPrefix(version, "v"), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, 0, fmt.Errorf("--version %q is not an Istio release such as %s", version, DefaultVersion)
	}
	nums := make([]int, len(parts))
	for i, p := range parts {
		// A pre-release ("1.31.0-beta.1") keeps its numeric part.
		p, _, _ = strings.Cut(p, "-")
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("--version %q is not an Istio release such as %s", version, DefaultVersion)
		}
		nums[i] = n
	}
	return nums[0], nums[1], nil
}

// KubeMinor reads the minor version of a Kubernetes server ("33", "33+" as some providers
// report it).
func KubeMinor(minor string) (int, error) {
	n, err := strconv.Atoi(strings.TrimRight(minor, "+"))
	if err != nil {
		return 0, fmt.Errorf("the API server reports minor version %q", minor)
	}
	return n, nil
}
