package envoyadmin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// Envoy's admin endpoints print protobuf messages as JSON, and which spelling of field names
// comes out depends on the Envoy release and on the tool that saved the output: snake_case
// ("added_via_api"), camelCase ("addedViaApi") or both in one document. The helpers below let
// the parsers match fields whatever the spelling, and accept int64 and uint64 values both as
// JSON numbers and as the JSON strings protobuf uses for them.

// looseKey is the spelling-independent form of a JSON field name: lower case without '_'.
func looseKey(k string) string {
	return strings.ToLower(strings.ReplaceAll(k, "_", ""))
}

// looseKeysJSON rewrites every object key of a JSON document to its looseKey form, so that one
// set of struct tags matches snake_case and camelCase input alike. It must not be used on
// documents whose free-form maps (node metadata, labels) need their keys as written.
func looseKeysJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("unexpected data after the JSON document")
	}
	return json.Marshal(looseKeysValue(v))
}

func looseKeysValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[looseKey(k)] = looseKeysValue(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = looseKeysValue(e)
		}
		return t
	default:
		return v
	}
}

// looseObject decodes one JSON object into its fields by looseKey, leaving the values raw.
func looseObject(data []byte) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		repaired, ok := repairPastedJSON(data)
		if !ok || json.Unmarshal(repaired, &raw) != nil {
			return nil, err
		}
	}
	m := make(map[string]json.RawMessage, len(raw))
	for k, v := range raw {
		m[looseKey(k)] = v
	}
	return m, nil
}

// looseInt is an integer that JSON may give as a number or as a string ("64"), as protobuf
// does for 64-bit values. null and "" leave it zero.
type looseInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *looseInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		return nil
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Large uint64 counters, or floats written for integers ("3.0").
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) {
			return fmt.Errorf("not an integer: %s", b)
		}
		switch {
		case f >= math.MaxInt64:
			i = math.MaxInt64
		case f <= math.MinInt64:
			i = math.MinInt64
		default:
			i = int64(f)
		}
	}
	*n = looseInt(i)
	return nil
}

// looseUint is an unsigned integer that JSON may give as a number or as a string, like the
// uint64 counters of /clusters. null and "" leave it zero.
type looseUint uint64

// UnmarshalJSON implements json.Unmarshaler.
func (n *looseUint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		return nil
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || f < 0 {
			return fmt.Errorf("not an unsigned integer: %s", b)
		}
		if f >= math.MaxUint64 {
			u = math.MaxUint64
		} else {
			u = uint64(f)
		}
	}
	*n = looseUint(u)
	return nil
}

// looseFloat is a number that JSON may give as a number or as a string.
type looseFloat float64

// UnmarshalJSON implements json.Unmarshaler.
func (n *looseFloat) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*n = looseFloat(f)
	return nil
}

// looseString returns a raw JSON value as a string: strings unquoted, numbers and booleans as
// written, null and absent as "".
func looseString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	if raw[0] == '{' || raw[0] == '[' {
		return ""
	}
	return string(raw)
}

// elisionLine is a line people put in pasted JSON for what they left out ("...", "……").
var elisionLine = lazyregexp.New(`(?m)^[ \t]*(?:\.{3,}|…+|\. \. \.)[ \t]*,?[ \t]*\r?$\n?`)

// danglingComma is a comma left before a closing bracket once an elided element is gone.
var danglingComma = lazyregexp.New(`,(\s*[\]}])`)

// repairPastedJSON takes out the elision lines of a JSON excerpt and the commas they leave
// dangling; ok is false when there was nothing to repair.
func repairPastedJSON(data []byte) ([]byte, bool) {
	out := elisionLine.ReplaceAll(data, nil)
	if len(out) == len(data) {
		return data, false
	}
	return danglingComma.ReplaceAll(out, []byte("$1")), true
}
