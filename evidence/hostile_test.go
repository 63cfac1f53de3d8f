package evidence

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Evidence from strangers (README "Evidence from strangers"): each hostile folder or archive
// is read without following, hanging or exhausting anything, and what was refused is said in
// one line that names the file.

func write(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantWarning(t *testing.T, s *Set, parts ...string) {
	t.Helper()
	for _, w := range s.Warnings {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(w, p)
		}
		if ok {
			return
		}
	}
	t.Errorf("no warning with %q in %q", parts, s.Warnings)
}

func TestHostileFolderSymlinkIsNotFollowed(t *testing.T) {
	dir := t.TempDir()
	secret := write(t, t.TempDir(), "secret", "TOKEN=hunter2")
	if err := os.Symlink(secret, filepath.Join(dir, StatsProm)); err != nil {
		t.Skip(err)
	}
	write(t, dir, Meta, `{"pod":"x"}`)
	s, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.File(StatsProm) != nil {
		t.Fatal("a symlinked stats.prom was read")
	}
	wantWarning(t, s, StatsProm, "symbolic link", "not read")
	for _, w := range s.Warnings {
		if strings.Contains(w, "hunter2") {
			t.Fatal("the link's target was echoed")
		}
	}
}

func TestHostileFolderFIFODoesNotHang(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, StatsProm), 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan *Set, 1)
	go func() {
		s, _ := ReadDir(dir)
		done <- s
	}()
	select {
	case s := <-done:
		if s == nil || s.File(StatsProm) != nil {
			t.Fatalf("FIFO read: %+v", s)
		}
		wantWarning(t, s, StatsProm, "FIFO")
	case <-time.After(30 * time.Second):
		// Not a timing assertion: a FIFO that is opened for reading blocks forever.
		t.Fatal("reading a folder with a FIFO did not return")
	}
}

func TestHostileFolderDeviceIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, ConfigDump)); err != nil {
		t.Skip(err)
	}
	s, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.File(ConfigDump) != nil {
		t.Fatal("a link to /dev/zero was read")
	}
}

func TestHostileFolderSizeCaps(t *testing.T) {
	defer func(f, tot int64) { maxFile, maxTotal = f, tot }(maxFile, maxTotal)
	maxFile, maxTotal = 1<<10, 3<<10
	dir := t.TempDir()
	big := write(t, dir, StatsProm, "")
	if err := os.Truncate(big, 2<<30); err != nil { // sparse: 2 GiB at no cost
		t.Fatal(err)
	}
	for _, n := range []string{StatsText, StatsJSON, ConfigDump, Certs} {
		write(t, dir, n, strings.Repeat("x", 900))
	}
	write(t, dir, "unrelated.bin", strings.Repeat("y", 5000))
	s, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.File(StatsProm) != nil {
		t.Fatal("a file over the cap was read")
	}
	wantWarning(t, s, StatsProm, "over the", "cap")
	if s.Len() != 3 {
		t.Errorf("read %d files, want 3 within the total cap: %v", s.Len(), s.Files())
	}
	wantWarning(t, s, "past", "in all")
}

func TestHostileFolderUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	dir := t.TempDir()
	write(t, dir, StatsProm, "x 1\n")
	os.Chmod(dir, 0)
	defer os.Chmod(dir, 0o755)
	if _, err := ReadDir(dir); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("err = %v, want the permission error", err)
	}
}

type entry struct {
	name, body string
	typ        byte
	size       int64 // declared size when not len(body)
}

func archive(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: e.typ}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeSymlink {
			h.Linkname, h.Size = "/etc/passwd", 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestHostileArchives(t *testing.T) {
	defer func(f, tot int64) { maxFile, maxTotal = f, tot }(maxFile, maxTotal)
	maxFile, maxTotal = 1<<10, 4<<10
	for _, tc := range []struct {
		name    string
		entries []entry
		err     string // the archive is refused with this
		warn    string // or read, with this warning
		files   int
	}{
		{"one top folder", []entry{{name: "cap/", typ: tar.TypeDir}, {name: "cap/stats.prom", body: "a 1\n"}, {name: "cap/meta.json", body: "{}"}}, "", "", 2},
		{"files at the root", []entry{{name: "stats.prom", body: "a 1\n"}}, "", "", 1},
		{"climbs out", []entry{{name: "cap/stats.prom", body: "a 1\n"}, {name: "cap/../../x/stats.prom", body: "b 2\n"}}, "climbs out", "", 0},
		{"absolute path", []entry{{name: "/etc/stats.prom", body: "a 1\n"}}, "absolute path", "", 0},
		{"duplicate", []entry{{name: "cap/stats.prom", body: "a 1\n"}, {name: "cap/stats.prom", body: "b 2\n"}}, "twice", "", 0},
		{"two top folders", []entry{{name: "a/stats.prom", body: "a 1\n"}, {name: "b/meta.json", body: "{}"}}, "two top folders", "", 0},
		{"junk past the total", []entry{{name: "cap/junk1.bin", body: strings.Repeat("z", 3<<10)}, {name: "cap/junk2.bin", body: strings.Repeat("z", 3<<10)}, {name: "cap/stats.prom", body: "a 1\n"}}, "add up to more than", "", 0},
		{"junk is skipped unread", []entry{{name: "cap/notes.txt", body: "hello"}, {name: "cap/stats.prom", body: "a 1\n"}}, "", "", 1},
		{"a file over the cap", []entry{{name: "cap/config_dump.json", body: strings.Repeat("x", 2<<10)}, {name: "cap/stats.prom", body: "a 1\n"}}, "", "over the", 1},
		{"a symlink entry", []entry{{name: "cap/stats.prom", typ: tar.TypeSymlink}, {name: "cap/meta.json", body: "{}"}}, "", "not a regular file", 1},
		{"nothing but junk", []entry{{name: "cap/a.txt", body: "x"}}, "holds no evidence file", "", 0},
	} {
		s, err := ReadArchive(bytes.NewReader(archive(t, tc.entries...)), "x.tar.gz")
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if s.Len() != tc.files {
			t.Errorf("%s: read %v, want %d files", tc.name, s.Files(), tc.files)
		}
		if tc.warn != "" {
			wantWarning(t, s, tc.warn)
		}
	}
	if _, err := ReadArchive(strings.NewReader("not gzip"), "x.tar.gz"); err == nil {
		t.Error("a non-gzip archive was read")
	}
}

func TestHostileArchivePathIsAFIFO(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	p := filepath.Join(t.TempDir(), "x.tar.gz")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Open(p); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "FIFO") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("opening a FIFO archive did not return")
	}
}

// BenchmarkHostileArchiveJunk measures what an archive of junk entries costs at the real caps:
// it is refused once its entries add up past MaxTotal, before the junk is decompressed.
func BenchmarkHostileArchiveJunk(b *testing.B) {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	zeros := make([]byte, 1<<20)
	for i := range 3 {
		tw.WriteHeader(&tar.Header{Name: "cap/junk" + string(rune('a'+i)), Mode: 0o644, Size: 500 << 20, Typeflag: tar.TypeReg})
		for range 500 {
			tw.Write(zeros)
		}
	}
	tw.Close()
	gz.Close()
	data := buf.Bytes()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := ReadArchive(bytes.NewReader(data), "junk.tar.gz"); err == nil {
			b.Fatal("junk archive read")
		}
	}
}
