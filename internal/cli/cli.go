// Package cli holds what every subcommand shares: output formats, exit codes and the
// connection to the cluster.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"sigs.k8s.io/yaml"
)

// Exit codes that scripts can rely on.
const (
	ExitOK       = 0 // the command ran
	ExitFindings = 1 // the diagnosis found problems at or above --fail-on
	ExitUsage    = 2 // bad usage or unreadable input
)

// ExitError carries the exit code a command wants; main turns it into the process's status.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return "" // the command already said what it had to say
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// UsageError marks an error as the user's: bad flags, arguments or input files.
func UsageError(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// Code returns the exit code for an error returned by a command.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitUsage
}

// Output formats of -o.
const (
	OutputText = ""
	OutputJSON = "json"
	OutputYAML = "yaml"
)

// ValidateOutput checks an -o value.
func ValidateOutput(o string) error {
	switch o {
	case OutputText, "text", OutputJSON, OutputYAML:
		return nil
	}
	return UsageError("unknown output format %q: use -o json or -o yaml, or leave -o out for text", o)
}

// PrintStructured writes v as JSON or YAML. It returns false for the text format, which each
// command renders itself.
func PrintStructured(w io.Writer, format string, v any) (bool, error) {
	switch format {
	case OutputJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return true, err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return true, err
	case OutputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = w.Write(b)
		return true, err
	}
	return false, nil
}

// ColorEnabled decides once whether output to w gets colour: never with NO_COLOR set (any
// value, see no-color.org), never when w is not a terminal.
func ColorEnabled(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	if os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}
