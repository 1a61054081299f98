package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// PrivateAddress is the socket of the private containerd that
// scripts/containerd.sh starts (`make run`) when no system containerd
// runs. With containerd.address unset, oxios uses it when the system
// socket is absent or does not answer.
const PrivateAddress = "/run/oxios/containerd/containerd.sock"

// AddressSet reports whether the file sets containerd.address; when it
// does not (and neither $CONTAINERD_ADDRESS nor --address does), the
// socket is found: DefaultAddress, else PrivateAddress.
func (c *Config) AddressSet() bool {
	_, ok := c.FileKeys["containerd.address"]
	return ok
}

// fileKeys returns the dotted keys the file sets ("container.port"), each
// with its line (0 when not found), for `oxios config show`.
func fileKeys(data []byte) map[string]int {
	var m map[string]any
	if toml.Unmarshal(data, &m) != nil {
		return nil
	}
	keys := map[string]int{}
	for section, v := range m {
		t, ok := v.(map[string]any)
		if !ok {
			continue
		}
		for k := range t {
			dotted := section + "." + k
			keys[dotted] = keyLine(data, dotted)
		}
	}
	return keys
}

// Entry is one key of the effective configuration, its value written as
// TOML.
type Entry struct {
	Key   string // "section.key"
	Value string
}

// Entries lists every key with its value, in the order of the schema.
func (c *Config) Entries() []Entry {
	var out []Entry
	v := reflect.ValueOf(c).Elem()
	for i := 0; i < v.NumField(); i++ {
		section := tomlName(v.Type().Field(i))
		if section == "" {
			continue
		}
		sv := v.Field(i)
		for j := 0; j < sv.NumField(); j++ {
			if key := tomlName(sv.Type().Field(j)); key != "" {
				out = append(out, Entry{Key: section + "." + key, Value: tomlValue(sv.Field(j))})
			}
		}
	}
	return out
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// tomlValue writes v as a TOML value, so that `oxios config show` can be
// pasted into a file.
func tomlValue(v reflect.Value) string {
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, _ := m.MarshalText()
		return strconv.Quote(string(b))
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Float64:
		s := strconv.FormatFloat(v.Float(), 'f', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	case reflect.Slice:
		q := make([]string, v.Len())
		for i := range q {
			q[i] = tomlValue(v.Index(i))
		}
		return "[" + strings.Join(q, ", ") + "]"
	case reflect.Map:
		return inlineTable(v)
	}
	return fmt.Sprint(v.Interface())
}

func inlineTable(v reflect.Value) string {
	var kv []string
	for _, k := range v.MapKeys() {
		kv = append(kv, strconv.Quote(k.String())+" = "+tomlValue(v.MapIndex(k)))
	}
	sort.Strings(kv)
	if len(kv) == 0 {
		return "{}"
	}
	return "{ " + strings.Join(kv, ", ") + " }"
}
