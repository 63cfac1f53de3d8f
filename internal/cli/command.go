package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"
)

// Command is what every subcommand's Options implement, as kubectl's commands do (the model is
// sample-cli-plugin): Complete reads the arguments and builds what the command needs (clients,
// files, standard input), Validate checks the result without side effects, and Run calls one
// engine function and prints what it returned.
type Command interface {
	Complete(args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// RunE runs a Command as cobra's RunE: Complete, Validate, Run, stopping at the first error.
func RunE(o Command) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		return o.Run(ctx)
	}
}

// Print writes v as -o asks: JSON or YAML, else the command's text rendering.
func Print(w io.Writer, format string, v any, text func(io.Writer) error) error {
	if done, err := PrintStructured(w, format, v); done {
		return err
	}
	return text(w)
}

// NoArgs is the usage error of a command given arguments it does not take.
func NoArgs(command string, args []string) error {
	if len(args) > 0 {
		return UsageError("%s takes no arguments (got %q): see --help", command, args[0])
	}
	return nil
}
