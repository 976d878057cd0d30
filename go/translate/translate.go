// Package translate reads and applies statesync translations between
// adjacent schema versions (docs/translations.md, format
// statesync.translation/1): rename, add, remove, move and convert ops, the
// derived down direction and the paired converters. It does no I/O.
package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/statesync/statesync/go/canonical"
)

// Format is the only translation format this package reads.
const Format = "statesync.translation/1"

// NoOp is the OpIndex of an error about the translation as a whole.
const NoOp = -1

// Error is an InvalidTranslationError: a translation refused when read (Field
// is the JSON Pointer of the bad member inside it) or an op that failed when
// applied (Field is the document path it touched).
type Error struct {
	OpIndex     int
	Field       string
	Reason      string
	FromVersion int
	ToVersion   int
}

func (e *Error) Error() string {
	where := "the translation"
	if e.OpIndex != NoOp {
		where = fmt.Sprintf("op %d", e.OpIndex)
	}
	return fmt.Sprintf("InvalidTranslationError: v%d to v%d, %s at %q: %s", e.FromVersion, e.ToVersion, where, e.Field, e.Reason)
}

// Op is one translation op.
type Op struct {
	Name       string // rename, add, remove, move, convert
	From, To   string // rename, move
	Path       string // add, remove, convert
	Default    any    // add, remove (HasDefault)
	HasDefault bool
	Converter  string // convert
}

// Translation takes documents between schema versions From and To = From + 1.
type Translation struct {
	From, To int
	Up, Down []Op
}

var members = map[string]struct{ required, optional []string }{
	"rename":  {[]string{"from", "to"}, nil},
	"add":     {[]string{"path", "default"}, nil},
	"remove":  {[]string{"path"}, []string{"default"}},
	"move":    {[]string{"from", "to"}, nil},
	"convert": {[]string{"path", "converter"}, nil},
}

// Parse reads a translation's JSON text strictly (docs/translations.md §2);
// a translation without down gets the derived one (§5).
func Parse(text []byte) (*Translation, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, &Error{OpIndex: NoOp, Reason: "not JSON: " + err.Error()}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, &Error{OpIndex: NoOp, Reason: "a translation is a JSON object"}
	}
	fail := func(field, format string, args ...any) error {
		return &Error{OpIndex: NoOp, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	for _, name := range sortedNames(obj) {
		if !slices.Contains([]string{"format", "from", "to", "up", "down"}, name) {
			return nil, fail(pointer(name), "unknown member %q", name)
		}
	}
	if obj["format"] != Format {
		return nil, fail("/format", "format must be %q", Format)
	}
	from, ok := integer(obj["from"])
	if !ok || from < 1 {
		return nil, fail("/from", "from must be an integer >= 1")
	}
	to, ok := integer(obj["to"])
	if !ok || to != from+1 {
		return nil, fail("/to", "to must be from + 1")
	}
	t := &Translation{From: int(from), To: int(to)}
	up, ok := obj["up"].([]any)
	if !ok {
		return nil, fail("/up", "up must be an array of ops")
	}
	var err error
	if t.Up, err = parseOps(up, "/up", t.From, t.To); err != nil {
		return nil, err
	}
	if raw, present := obj["down"]; present {
		down, ok := raw.([]any)
		if !ok {
			return nil, fail("/down", "down must be an array of ops")
		}
		if t.Down, err = parseOps(down, "/down", t.To, t.From); err != nil {
			return nil, err
		}
	} else {
		t.Down = derive(t.Up)
	}
	return t, nil
}

func parseOps(list []any, field string, fromVersion, toVersion int) ([]Op, error) {
	ops := make([]Op, len(list))
	for i, raw := range list {
		at := fmt.Sprintf("%s/%d", field, i)
		fail := func(member, format string, args ...any) error {
			f := at
			if member != "" {
				f += pointer(member)
			}
			return &Error{OpIndex: i, Field: f, Reason: fmt.Sprintf(format, args...), FromVersion: fromVersion, ToVersion: toVersion}
		}
		obj, ok := raw.(map[string]any)
		if !ok {
			return nil, fail("", "an op is a JSON object")
		}
		name, _ := obj["op"].(string)
		spec, known := members[name]
		if !known {
			return nil, fail("op", "op %v is not one of rename, add, remove, move, convert", obj["op"])
		}
		for _, m := range sortedNames(obj) {
			if m != "op" && !slices.Contains(spec.required, m) && !slices.Contains(spec.optional, m) {
				return nil, fail(m, "%s has no member %q", name, m)
			}
		}
		for _, m := range spec.required {
			if _, ok := obj[m]; !ok {
				return nil, fail(m, "%s needs %q", name, m)
			}
		}
		op := Op{Name: name}
		for _, m := range []string{"from", "to", "path"} {
			if _, ok := obj[m]; !ok {
				continue
			}
			p, ok := obj[m].(string)
			if !ok {
				return nil, fail(m, "%s is not a string", m)
			}
			if _, err := tokens(p); err != nil {
				return nil, fail(m, "%v", err)
			}
			switch m {
			case "from":
				op.From = p
			case "to":
				op.To = p
			default:
				op.Path = p
			}
		}
		from, _ := tokens(op.From)
		to, _ := tokens(op.To)
		switch name {
		case "rename":
			if !slices.Equal(from[:len(from)-1], to[:len(to)-1]) {
				return nil, fail("to", "a rename keeps the parent: %s and %s differ before the last token", op.From, op.To)
			}
			if op.From == op.To {
				return nil, fail("to", "a rename to itself")
			}
		case "move":
			if isPrefix(from, to) || isPrefix(to, from) {
				return nil, fail("to", "a move between %s and %s, one inside the other", op.From, op.To)
			}
		case "convert":
			op.Converter, _ = obj["converter"].(string)
			if _, ok := converters[op.Converter]; !ok {
				return nil, fail("converter", "unknown converter %v", obj["converter"])
			}
		}
		if raw, ok := obj["default"]; ok {
			v, err := ijson(raw)
			if err != nil {
				return nil, fail("default", "the default is not I-JSON: %v", err)
			}
			op.Default, op.HasDefault = v, true
		}
		ops[i] = op
	}
	return ops, nil
}

// derive inverts up: each op's inverse, in reverse order, leaving out a
// remove without a default (§5).
func derive(up []Op) []Op {
	down := []Op{}
	for i := len(up) - 1; i >= 0; i-- {
		op := up[i]
		switch op.Name {
		case "rename", "move":
			down = append(down, Op{Name: op.Name, From: op.To, To: op.From})
		case "add":
			down = append(down, Op{Name: "remove", Path: op.Path, Default: op.Default, HasDefault: true})
		case "remove":
			if op.HasDefault {
				down = append(down, Op{Name: "add", Path: op.Path, Default: op.Default, HasDefault: true})
			}
		case "convert":
			down = append(down, Op{Name: "convert", Path: op.Path, Converter: converters[op.Converter].pair})
		}
	}
	return down
}

// Canonical is the canonical form (§2): all five members, down explicit.
func (t *Translation) Canonical() map[string]any {
	return map[string]any{
		"format": Format, "from": float64(t.From), "to": float64(t.To),
		"up": canonicalOps(t.Up), "down": canonicalOps(t.Down),
	}
}

func canonicalOps(ops []Op) []any {
	out := make([]any, len(ops))
	for i, op := range ops {
		m := map[string]any{"op": op.Name}
		switch op.Name {
		case "rename", "move":
			m["from"], m["to"] = op.From, op.To
		default:
			m["path"] = op.Path
		}
		if op.HasDefault {
			m["default"] = canonical.Clone(op.Default)
		}
		if op.Converter != "" {
			m["converter"] = op.Converter
		}
		out[i] = m
	}
	return out
}

// ApplyUp translates a document of version From to To.
func (t *Translation) ApplyUp(doc any) (any, error) { return apply(t.Up, doc, t.From, t.To) }

// ApplyDown translates a document of version To to From.
func (t *Translation) ApplyDown(doc any) (any, error) { return apply(t.Down, doc, t.To, t.From) }

func sortedNames(obj map[string]any) []string {
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// pointer escapes one member name as a JSON Pointer token.
func pointer(name string) string {
	return "/" + strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}

// tokens parses a path: "/" then tokens, ~1 for "/" and ~0 for "~"; never "".
func tokens(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("a path names a member, not the whole document")
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("path %q does not start with '/'", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, t := range parts {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, fmt.Errorf("path %q has a bad ~ escape", p)
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

func isPrefix(prefix, of []string) bool {
	return len(prefix) <= len(of) && slices.Equal(prefix, of[:len(prefix)])
}

// integer reads a JSON integer: no fraction, no exponent, within I-JSON.
func integer(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil || i > canonical.MaxSafeInteger || i < -canonical.MaxSafeInteger {
		return 0, false
	}
	return i, true
}

// ijson turns a decoded value (json.Number numbers) into package canonical's
// types, refusing numbers outside I-JSON.
func ijson(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return canonical.Parse([]byte(x))
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			var err error
			if out[i], err = ijson(item); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			var err error
			if out[k], err = ijson(item); err != nil {
				return nil, err
			}
		}
		return out, nil
	default:
		return v, nil
	}
}
