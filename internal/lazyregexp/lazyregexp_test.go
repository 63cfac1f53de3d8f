package lazyregexp

import (
	"regexp"
	"slices"
	"sync"
	"testing"
)

func TestForwardsToRegexp(t *testing.T) {
	const expr = `(\w+)=(\d+)`
	const text = "a=1 b=2"
	lazy, eager := New(expr), regexp.MustCompile(expr)
	if got, want := lazy.FindAllStringSubmatch(text, -1), eager.FindAllStringSubmatch(text, -1); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("FindAllStringSubmatch = %q, want %q", got, want)
	}
	if got, want := lazy.ReplaceAllString(text, "$1"), eager.ReplaceAllString(text, "$1"); got != want {
		t.Errorf("ReplaceAllString = %q, want %q", got, want)
	}
	if got, want := string(lazy.ReplaceAll([]byte(text), []byte("x"))), "x x"; got != want {
		t.Errorf("ReplaceAll = %q, want %q", got, want)
	}
	if !lazy.MatchString(text) || lazy.Match([]byte("none")) {
		t.Error("MatchString or Match disagree with the pattern")
	}
	if lazy.String() != expr || lazy.Regexp().String() != expr {
		t.Errorf("String = %q, Regexp().String() = %q, want %q", lazy.String(), lazy.Regexp().String(), expr)
	}
}

// A bad pattern must fail its package's tests, not wait for the first run that uses it.
func TestCompiledAtOnceInTests(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New of an invalid pattern did not panic in a test binary")
		}
	}()
	New(`(`)
}

func TestConcurrentFirstUse(t *testing.T) {
	r := &Regexp{expr: `\d+`} // not compiled yet, as outside tests
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := r.FindString("ab12"); got != "12" {
				t.Errorf("FindString = %q, want 12", got)
			}
		})
	}
	wg.Wait()
}
