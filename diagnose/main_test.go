package diagnose

import "flag"

// update makes golden-file tests rewrite their files: go test ./diagnose -update.
var update = flag.Bool("update", false, "rewrite golden files")
