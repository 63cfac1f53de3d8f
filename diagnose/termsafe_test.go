package diagnose

import "testing"

// needsEscape's byte-at-a-time path for printable ASCII must agree with the rune-by-rune check
// it skips, wherever the first other byte falls.
func TestNeedsEscapeAgreesWithRuneCheck(t *testing.T) {
	runeCheck := func(s string, multiline bool) bool {
		for _, r := range s {
			if unsafeRune(r) && !((r == '\n' || r == '\t') && multiline) {
				return true
			}
		}
		return false
	}
	for _, s := range []string{
		"", "outbound|80||httpbin.default.svc.cluster.local", "a\tb", "line\nline", "bell\a",
		"del\x7f", "esc\x1b[31mred", "c1\u0085", "bidi\u202eevil", "lrm\u200e", "soft\u00adhyphen",
		"invalid \xff utf-8", "\xc3", "tail é", "é\x1b", "~ ", "\x00",
	} {
		for _, multiline := range []bool{false, true} {
			if got, want := needsEscape(s, multiline), runeCheck(s, multiline); got != want {
				t.Errorf("needsEscape(%q, %v) = %v, the rune check says %v", s, multiline, got, want)
			}
		}
	}
}
