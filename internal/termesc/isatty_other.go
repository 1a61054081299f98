//go:build !linux && !darwin

package termesc

import "io"

// IsTerminal is false where no terminal check is built: output stays
// escaped only with an explicit choice by the caller.
func IsTerminal(io.Writer) bool { return false }
