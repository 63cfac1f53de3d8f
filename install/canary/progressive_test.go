package canary

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// The progressive mode's decisions, in milliseconds, with its sidecar sampling given: step up
// while the canary keeps within bounds, roll back on errors, latency, silence or a canary that
// cannot be measured. plugins/canary runs the same rollout on the test control plane.

// step is what the canary's sidecars show over one interval.
type step struct {
	requests, errors float64
	slowMs           float64 // every request took this long; 0: no histogram
	err              error
}

func interval(st step) collect.PodInterval {
	series := func(total, errs float64, slow float64) *envoyadmin.StatsSample {
		s := &envoyadmin.StatsSample{Istio: []envoyadmin.IstioSeries{
			{Metric: "istio_requests_total", Labels: map[string]string{"reporter": "destination", "response_code": "200"}, Value: total - errs},
			{Metric: "istio_requests_total", Labels: map[string]string{"reporter": "destination", "response_code": "503"}, Value: errs},
		}}
		if slow > 0 {
			h := &envoyadmin.Histogram{Count: total, Sum: total * slow}
			for _, b := range []float64{10, 100, 1000, 10000, math.Inf(1)} {
				n := 0.0
				if slow <= b {
					n = total
				}
				h.Buckets = append(h.Buckets, envoyadmin.Bucket{UpperBound: b, Count: n})
			}
			s.Istio = append(s.Istio, envoyadmin.IstioSeries{Metric: "istio_request_duration_milliseconds", Labels: map[string]string{"reporter": "destination"}, Value: total, Histogram: h})
		}
		return s
	}
	if st.err != nil {
		return collect.PodInterval{Namespace: "default", Pod: "reviews-v2-0", Err: st.err}
	}
	before := series(0, 0, st.slowMs) // the same series at zero: the window's start
	return collect.PodInterval{Namespace: "default", Pod: "reviews-v2-0", Interval: envoyadmin.NewStatsInterval(before, series(st.requests, st.errors, st.slowMs), 10*time.Second)}
}

func runProgressive(t *testing.T, steps ...step) (*Result, []int) {
	t.Helper()
	n := 0
	o := &Options{Canary: "v2", Stable: "v1", Step: 25, Interval: time.Second, MaxErrorRate: 0.05, MaxP99: 500 * time.Millisecond,
		Sample: func(ctx context.Context, pods []corev1.Pod, families ...string) []collect.PodInterval {
			st := steps[min(n, len(steps)-1)]
			n++
			return []collect.PodInterval{interval(st)}
		}}
	var weights []int
	res := &Result{Weight: 25}
	list := func(context.Context) ([]corev1.Pod, error) {
		return []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "reviews-v2-0", Namespace: "default"}}}, nil
	}
	if err := o.progressive(context.Background(), res, func(w int) error { weights = append(weights, w); return nil }, list); err != nil {
		t.Fatal(err)
	}
	return res, weights
}

func TestProgressiveDecisions(t *testing.T) {
	healthy := step{requests: 100, errors: 1, slowMs: 50}
	for _, tc := range []struct {
		name     string
		steps    []step
		weights  []int
		rollback string
	}{
		{"within bounds: up to 100", []step{healthy}, []int{50, 75, 100}, ""},
		{"errors over the bound: back to stable", []step{healthy, {requests: 100, errors: 20, slowMs: 50}}, []int{50, 0}, "error rate 20.00% over 5.00%"},
		{"p99 over the bound: back to stable", []step{{requests: 100, slowMs: 5000}}, []int{0}, "p99"},
		{"no request three times: back to stable", []step{{}}, []int{0}, "no request reached the canary in three intervals"},
		{"cannot be measured: back to stable", []step{{err: errors.New("port-forward refused")}}, []int{0}, "cannot measure the canary"},
	} {
		res, weights := runProgressive(t, tc.steps...)
		if fmt.Sprint(weights) != fmt.Sprint(tc.weights) {
			t.Errorf("%s: weights %v, want %v (steps %+v)", tc.name, weights, tc.weights, res.Steps)
		}
		if !strings.Contains(res.RolledBack, tc.rollback) || (tc.rollback == "") != (res.RolledBack == "") {
			t.Errorf("%s: rolled back %q, want %q", tc.name, res.RolledBack, tc.rollback)
		}
	}
}
