//go:build !unix

package evidence

import "os"

// openRegular opens a file for reading only if it is a regular file. Without O_NOFOLLOW and
// O_NONBLOCK the file is checked before it is opened, and again once open.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	lst, err := os.Lstat(path)
	if err != nil {
		return nil, nil, err
	}
	if !lst.Mode().IsRegular() {
		return nil, nil, errNotRegular(kindOf(lst.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = errNotRegular(kindOf(st.Mode()))
		}
		return nil, nil, err
	}
	return f, st, nil
}
