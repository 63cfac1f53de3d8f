package testcluster

import (
	"testing"
)

// TestPortTaken: a process that exited on a port another took makes Start try again; one
// that failed otherwise does not.
func TestPortTaken(t *testing.T) {
	for _, tc := range []struct {
		say  string
		want bool
	}{
		{`Failed to run server err="listen tcp 127.0.0.1:40271: bind: address already in use"`, true},
		{"some other failure", false},
	} {
		c := &Cluster{Dir: t.TempDir(), t: t, procs: map[string]*process{}}
		p, err := startProcess(c.Dir, "/bin/sh", "kwok", nil, sysProcAttr(), "-c", "echo '"+tc.say+"'; exit 1")
		if err != nil {
			t.Fatal(err)
		}
		<-p.done
		c.procs["kwok"] = p
		if got := c.portTaken(); got != tc.want {
			t.Errorf("%q: portTaken %v, want %v", tc.say, got, tc.want)
		}
	}
}
