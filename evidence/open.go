package evidence

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// What one evidence file and one capture may hold. The largest real config dumps and stats are
// tens of megabytes; anything past these is not a proxy's output, and reading it would cost a
// stranger's choice of memory and time.
const (
	MaxFile  = 256 << 20
	MaxTotal = 1 << 30
)

// maxFile and maxTotal are the caps in force: the constants, lowered by tests.
var maxFile, maxTotal int64 = MaxFile, MaxTotal

// MaxSmallFile bounds the files a capture writes itself, which hold a few names and times.
const MaxSmallFile = 1 << 20

// capOf is the cap of one evidence file.
func capOf(name string) int64 {
	switch name {
	case Meta, Hops, ServerInfo:
		return min(MaxSmallFile, maxFile)
	}
	return maxFile
}

// Set is evidence read from a folder or an archive: the evidence files it holds, and what was
// refused or skipped, each in one line that names the file.
type Set struct {
	// Where names the folder or archive in messages.
	Where string
	files map[string][]byte
	names []string // in the order they were added
	// Warnings say which files were not read, and why.
	Warnings []string
}

// Add stores a file (a capture's, as it takes it), replacing one of the same name.
func (s *Set) Add(name string, b []byte) {
	if s.files == nil {
		s.files = map[string][]byte{}
	}
	if _, ok := s.files[name]; !ok {
		s.names = append(s.names, name)
	}
	s.files[name] = b
}

// Names returns the file names in the order they were added.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// FS returns the files as a read-only file system of plain names.
func (s *Set) FS() fs.FS { return MemFS(s.files) }

// Len is the number of evidence files read.
func (s *Set) Len() int { return len(s.files) }

func (s *Set) warnf(format string, args ...any) {
	s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...))
}

// IsArchive reports whether a path names a .tar.gz or .tgz archive rather than a folder.
func IsArchive(p string) bool {
	return strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz")
}

// Open reads an evidence folder or archive (.tar.gz, .tgz), under the rules of ReadDir and
// ReadArchive.
func Open(p string) (*Set, error) {
	if !IsArchive(p) {
		return ReadDir(p)
	}
	f, _, err := openRegular(p)
	if err != nil {
		return nil, fmt.Errorf("evidence archive %q: %w", p, err)
	}
	defer f.Close()
	return ReadArchive(f, p)
}

// ReadDir reads the evidence files of a folder. Only regular files with an evidence file's name
// are read: symlinks, FIFOs and devices are refused unopened (a link to /proc/self/environ is
// not echoed, a FIFO does not hang the read), other names are left unread, and a file over
// MaxFile, or past MaxTotal in all, is skipped. Each refusal is a warning naming the file.
func ReadDir(dir string) (*Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("evidence folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("evidence folder %q is a file, not a folder: pass the folder that holds stats.prom, config_dump.json and the like, or a .tar.gz capture", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("evidence folder %q cannot be read: %w", dir, err)
	}
	s := &Set{Where: dir, files: map[string][]byte{}}
	var total int64
	for _, e := range entries {
		name := e.Name()
		if !Known(name) {
			continue
		}
		if !e.Type().IsRegular() {
			s.warnf("%s: %v; not read", name, errNotRegular(kindOf(e.Type())))
			continue
		}
		f, info, err := openRegular(filepath.Join(dir, name))
		if err != nil {
			s.warnf("%s: %v; not read", name, err)
			continue
		}
		if !s.sizeOK(name, info.Size(), &total) {
			f.Close()
			continue
		}
		b, err := readSized(f, info.Size(), maxFile)
		f.Close()
		if err != nil {
			s.warnf("%s: %v; not read", name, err)
			continue
		}
		if int64(len(b)) > maxFile {
			s.warnf("%s grew past the %d MiB cap for one evidence file while it was read; not read", name, maxFile>>20)
			continue
		}
		s.Add(name, b)
	}
	return s, nil
}

// sizeOK checks a file's size against the caps, counting it into total, and warns when not.
func (s *Set) sizeOK(name string, size int64, total *int64) bool {
	switch c := capOf(name); {
	case size > c:
		s.warnf("%s is %d KiB, over the %d KiB cap for this evidence file; not read", name, size>>10, c>>10)
		return false
	case *total+size > maxTotal:
		s.warnf("%s would take the capture past %d MiB in all; not read", name, maxTotal>>20)
		return false
	}
	*total += size
	return true
}

// ReadArchive reads an evidence archive (kubectl mesh capture -o FILE.tar.gz, or tar -czf of an
// evidence folder): the evidence files at its root or in its one top folder. An entry that
// climbs out (".."), an absolute path, a second top folder or a second entry of the same name
// refuse the whole archive: something is not what it claims to be. Entries that are not
// evidence files are skipped unread; an archive whose entries add up to more than MaxTotal is
// refused before they are read.
func ReadArchive(r io.Reader, where string) (*Set, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("evidence archive %q: not a gzip archive: %w", where, err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	s := &Set{Where: where, files: map[string][]byte{}}
	var declared, total int64
	top := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("evidence archive %q: %w", where, err)
		}
		declared += max(hdr.Size, 0)
		if declared > maxTotal {
			return nil, fmt.Errorf("evidence archive %q: its entries add up to more than %d MiB, more than any capture; refused", where, maxTotal>>20)
		}
		dir, name, err := entryName(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("evidence archive %q: %w; refused", where, err)
		}
		if dir != "" {
			switch {
			case strings.Contains(dir, "/"):
				continue // deeper than the top folder: not evidence
			case top == "":
				top = dir
			case dir != top:
				return nil, fmt.Errorf("evidence archive %q: two top folders, %q and %q; a capture has one; refused", where, top, dir)
			}
		}
		if name == "" || !Known(name) {
			continue
		}
		if _, dup := s.files[name]; dup {
			return nil, fmt.Errorf("evidence archive %q: %q is in it twice; refused", where, name)
		}
		if hdr.Typeflag != tar.TypeReg {
			s.warnf("%s: a link or special entry in the archive, not a regular file; not read", name)
			continue
		}
		if !s.sizeOK(name, hdr.Size, &total) {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxFile+1))
		if err != nil {
			return nil, fmt.Errorf("evidence archive %q: reading %s: %w", where, name, err)
		}
		s.Add(name, b)
	}
	if len(s.files) == 0 && len(s.Warnings) == 0 {
		return nil, fmt.Errorf("evidence archive %q holds no evidence file: expected some of %s", where, strings.Join(Names()[:8], ", "))
	}
	return s, nil
}

// entryName splits an archive entry's name into its top folder ("" at the root) and its file
// name, refusing absolute names and names that climb out.
func entryName(raw string) (dir, name string, err error) {
	n := strings.ReplaceAll(raw, `\`, "/")
	if strings.HasPrefix(n, "/") || (len(n) > 1 && n[1] == ':') {
		return "", "", fmt.Errorf("entry %q has an absolute path", raw)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", "", fmt.Errorf("entry %q climbs out of its folder", raw)
		}
	}
	n = path.Clean(strings.TrimPrefix(n, "./"))
	if n == "." {
		return "", "", nil
	}
	dir, name = path.Split(n)
	return strings.TrimSuffix(dir, "/"), name, nil
}

// errNotRegular is why a file that is not a regular file is refused.
func errNotRegular(kind string) error {
	return fmt.Errorf("%s, not a regular file: evidence is read only from regular files", kind)
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a folder"
	}
	return "not a regular file"
}

// File returns an evidence file's content, nil when the set does not hold it.
func (s *Set) File(name string) []byte { return s.files[name] }

// Files returns the names of the evidence files read, sorted.
func (s *Set) Files() []string {
	out := make([]string, 0, len(s.files))
	for n := range s.files {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ReadFile reads one file a user named (clusters --file): only a regular file, at most MaxFile.
func ReadFile(p string) ([]byte, error) {
	f, info, err := openRegular(p)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", p, err)
	}
	defer f.Close()
	if info.Size() > maxFile {
		return nil, fmt.Errorf("%q is %d MiB, over the %d MiB cap for one evidence file", p, info.Size()>>20, maxFile>>20)
	}
	b, err := readSized(f, info.Size(), maxFile)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", p, err)
	}
	if int64(len(b)) > maxFile {
		return nil, fmt.Errorf("%q grew past the %d MiB cap while it was read", p, maxFile>>20)
	}
	return b, nil
}

// readSized reads f to its end, or to one byte past limit, into one buffer of the size the
// file's stat announced (at most limit, checked before): a 10 MB config dump is then read with
// one allocation and no copy, where io.ReadAll's growing buffer allocated and copied 22 MiB for it
// and started two garbage collections. The buffer grows only if the file grew since its stat.
// Archive entries are not read this way: their sizes are a stranger's claim, not the file
// system's, and are read as they arrive.
func readSized(f *os.File, size, limit int64) ([]byte, error) {
	b := make([]byte, 0, min(max(size, 0), limit)+1) // +1: EOF is seen without growing
	r := io.LimitReader(f, limit+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
