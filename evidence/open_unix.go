//go:build unix

package evidence

import (
	"os"
	"syscall"
)

// openRegular opens a file for reading only if it is a regular file: a symlink is not followed
// (O_NOFOLLOW), and a FIFO or device does not block the open (O_NONBLOCK) and is refused once
// open, so no later read can hang on it.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok && pe.Err == syscall.ELOOP {
			return nil, nil, errNotRegular("a symbolic link")
		}
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, errNotRegular(kindOf(st.Mode()))
	}
	return f, st, nil
}
