package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
)

// Error is a config problem with its place: "FILE:LINE: key KEY: MSG".
type Error struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		fmt.Fprintf(&b, "key %s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

func decode(path string, data []byte, c *Config) error {
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	err := d.Decode(c)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		de := strict.Errors[0]
		row, _ := de.Position()
		return &Error{File: path, Line: row, Key: strings.Join(de.Key(), "."),
			Msg: "unknown key (see deploy/oxios.toml for every key)"}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &Error{File: path, Line: row, Key: strings.Join(de.Key(), "."), Msg: plain(de.Error())}
	}
	return &Error{File: path, Msg: err.Error()}
}

// fieldError is a validation failure of one key ("section.key").
type fieldError struct {
	key string
	msg string
}

func (e *fieldError) Error() string { return "key " + e.key + ": " + e.msg }

// located turns a fieldError into an Error with the line where the key is
// written (0 when it came from the defaults).
func located(path string, data []byte, err error) error {
	var fe *fieldError
	if !errors.As(err, &fe) {
		return &Error{File: path, Msg: err.Error()}
	}
	return &Error{File: path, Line: keyLine(data, fe.key), Key: fe.key, Msg: fe.msg}
}

// keyLine finds "key =" inside "[section]"; good enough for the flat
// two-level schema, and only used to point at a line in an error.
func keyLine(data []byte, dotted string) int {
	section, key, _ := strings.Cut(dotted, ".")
	cur := ""
	s := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if strings.HasPrefix(line, "[") {
			cur = strings.Trim(line, "[] ")
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"'`)
		if (cur == section && k == key) || (cur == "" && k == dotted) {
			return n
		}
	}
	return 0
}

// mismatchRE matches go-toml's type errors, which name Go types. Compiled
// on the first error, not at every CLI start.
var mismatchRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`cannot decode TOML (\w+) into struct field \S+ of type (\S+)`)
})

// plain rewrites a decode error for a user of the file: "expected an
// integer, got a string" instead of Go struct and type names.
func plain(msg string) string {
	msg = strings.TrimPrefix(msg, "toml: ")
	m := mismatchRE().FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := map[string]string{"int": "an integer", "int64": "an integer", "float64": "a number", "bool": "true or false",
		"string": "a string", "[]string": "an array of strings", "map[string]string": "a table of strings"}[m[2]]
	if want == "" {
		want = "another type"
	}
	return fmt.Sprintf("expected %s, got a TOML %s", want, m[1])
}
