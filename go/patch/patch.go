// Package patch applies RFC 6902 JSON Patch documents strictly, as statesync
// does for patch ops and for the deltas a worker receives (conformance/README.md,
// "patch"). Values are those of package canonical; it does no I/O.
package patch

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/statesync/statesync/go/canonical"
)

// Kind names why a patch failed, as in conformance/patch/vectors.json.
type Kind string

// The kinds of patch failure.
const (
	NotAnArray    Kind = "not_an_array"
	NotAnObject   Kind = "not_an_object"
	UnknownOp     Kind = "unknown_op"
	BadPointer    Kind = "bad_pointer"
	MissingMember Kind = "missing_member"
	NotFound      Kind = "not_found"
	TestFailed    Kind = "test_failed"
	Conflict      Kind = "conflict"
	TooDeep       Kind = "too_deep"
)

// WholePatch is the OpIndex of an error about the patch as a whole.
const WholePatch = -1

// Error is a failed patch: its kind, the index of the op that failed
// (WholePatch for the patch itself) and what was wrong.
type Error struct {
	Kind    Kind
	OpIndex int
	Reason  string
}

func (e *Error) Error() string {
	if e.OpIndex == WholePatch {
		return fmt.Sprintf("JSON patch (%s): %s", e.Kind, e.Reason)
	}
	return fmt.Sprintf("JSON patch op %d (%s): %s", e.OpIndex, e.Kind, e.Reason)
}

type op struct {
	name  string
	path  []string
	from  []string
	value any
}

// Apply applies patch (a parsed JSON Patch document) to doc and returns the
// result; doc is not modified. The first op that fails fails the patch.
func Apply(doc, patch any) (any, error) {
	ops, err := parse(patch)
	if err != nil {
		return nil, err
	}
	out := canonical.Clone(doc)
	for i, o := range ops {
		if out, err = o.apply(out); err != nil {
			return nil, &Error{Kind: err.(*failure).kind, OpIndex: i, Reason: err.Error()}
		}
		if depth(out) > canonical.MaxDepth {
			return nil, &Error{Kind: TooDeep, OpIndex: i, Reason: fmt.Sprintf("the result nests deeper than %d levels", canonical.MaxDepth)}
		}
	}
	return out, nil
}

// ApplyJSON parses document and patch as strict I-JSON, applies the patch
// and returns the canonical bytes of the result.
func ApplyJSON(document, patch []byte) ([]byte, error) {
	doc, err := canonical.Parse(document)
	if err != nil {
		return nil, fmt.Errorf("the document: %w", err)
	}
	p, err := canonical.Parse(patch)
	if err != nil {
		return nil, fmt.Errorf("the patch: %w", err)
	}
	out, err := Apply(doc, p)
	if err != nil {
		return nil, err
	}
	return canonical.Encode(out)
}

// parse checks every op before any applies.
func parse(patch any) ([]op, error) {
	list, ok := patch.([]any)
	if !ok {
		return nil, &Error{NotAnArray, WholePatch, "a patch is a JSON array of ops"}
	}
	ops := make([]op, len(list))
	for i, raw := range list {
		fail := func(kind Kind, format string, args ...any) error {
			return &Error{kind, i, fmt.Sprintf(format, args...)}
		}
		obj, ok := raw.(map[string]any)
		if !ok {
			return nil, fail(NotAnObject, "an op is a JSON object")
		}
		name, _ := obj["op"].(string)
		switch name {
		case "add", "remove", "replace", "move", "copy", "test":
		default:
			return nil, fail(UnknownOp, "op %v is not one of add, remove, replace, move, copy, test", obj["op"])
		}
		path, err := pointer(obj, "path")
		if err != nil {
			return nil, fail(BadPointer, "%v", err)
		}
		o := op{name: name, path: path}
		switch name {
		case "add", "replace", "test":
			value, ok := obj["value"]
			if !ok {
				return nil, fail(MissingMember, "%s needs a value", name)
			}
			o.value = value
		case "move", "copy":
			if _, ok := obj["from"]; !ok {
				return nil, fail(MissingMember, "%s needs from", name)
			}
			if o.from, err = pointer(obj, "from"); err != nil {
				return nil, fail(BadPointer, "%v", err)
			}
		}
		ops[i] = o
	}
	return ops, nil
}

// pointer parses the RFC 6901 pointer in member name of an op into tokens.
func pointer(obj map[string]any, name string) ([]string, error) {
	text, ok := obj[name].(string)
	if !ok {
		return nil, fmt.Errorf("%s is missing or not a string", name)
	}
	if text == "" {
		return []string{}, nil
	}
	if text[0] != '/' {
		return nil, fmt.Errorf("%s %q does not start with '/'", name, text)
	}
	tokens := strings.Split(text[1:], "/")
	for i, t := range tokens {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, fmt.Errorf("%s %q has a bad ~ escape", name, text)
			}
		}
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

type failure struct {
	kind   Kind
	reason string
}

func (f *failure) Error() string { return f.reason }

func fail(kind Kind, format string, args ...any) error {
	return &failure{kind, fmt.Sprintf(format, args...)}
}

func (o op) apply(doc any) (any, error) {
	switch o.name {
	case "add":
		return add(doc, o.path, canonical.Clone(o.value))
	case "remove":
		return remove(doc, o.path)
	case "replace":
		return replace(doc, o.path, canonical.Clone(o.value))
	case "copy":
		v, err := get(doc, o.from)
		if err != nil {
			return nil, err
		}
		return add(doc, o.path, canonical.Clone(v))
	case "move":
		v, err := get(doc, o.from)
		if err != nil {
			return nil, err
		}
		if slices.Equal(o.from, o.path) {
			return doc, nil
		}
		if len(o.from) < len(o.path) && slices.Equal(o.from, o.path[:len(o.from)]) {
			return nil, fail(Conflict, "cannot move a value into its own child")
		}
		if doc, err = remove(doc, o.from); err != nil {
			return nil, err
		}
		return add(doc, o.path, v)
	default: // test
		v, err := get(doc, o.path)
		if err != nil {
			return nil, fail(TestFailed, "test: %v", err)
		}
		if !canonical.Equal(v, o.value) {
			return nil, fail(TestFailed, "test: the value at %s differs", render(o.path))
		}
		return doc, nil
	}
}

func render(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// index reads an array index: "0" or digits without a leading zero, below
// limit (limit is the length, or the length + 1 where add may append).
func index(token string, limit int) (int, error) {
	if token == "" || (len(token) > 1 && token[0] == '0') || strings.Trim(token, "0123456789") != "" {
		return 0, fail(NotFound, "%q is not an array index", token)
	}
	i, err := strconv.Atoi(token)
	if err != nil || i >= limit {
		return 0, fail(NotFound, "index %s is past the end of the array", token)
	}
	return i, nil
}

// step reads one child that must exist.
func step(doc any, token string) (any, error) {
	switch c := doc.(type) {
	case map[string]any:
		v, ok := c[token]
		if !ok {
			return nil, fail(NotFound, "no member %q", token)
		}
		return v, nil
	case []any:
		i, err := index(token, len(c))
		if err != nil {
			return nil, err
		}
		return c[i], nil
	default:
		return nil, fail(NotFound, "cannot step into a scalar with %q", token)
	}
}

func get(doc any, tokens []string) (any, error) {
	var err error
	for _, t := range tokens {
		if doc, err = step(doc, t); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// modify rebuilds the path to tokens' parent, letting change replace the
// parent container given the last token.
func modify(doc any, tokens []string, change func(parent any, last string) (any, error)) (any, error) {
	if len(tokens) == 1 {
		return change(doc, tokens[0])
	}
	child, err := step(doc, tokens[0])
	if err != nil {
		return nil, err
	}
	if child, err = modify(child, tokens[1:], change); err != nil {
		return nil, err
	}
	switch c := doc.(type) {
	case map[string]any:
		c[tokens[0]] = child
	case []any:
		i, _ := index(tokens[0], len(c))
		c[i] = child
	}
	return doc, nil
}

func add(doc any, tokens []string, value any) (any, error) {
	if len(tokens) == 0 {
		return value, nil
	}
	return modify(doc, tokens, func(parent any, last string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			c[last] = value
			return c, nil
		case []any:
			i := len(c)
			if last != "-" {
				var err error
				if i, err = index(last, len(c)+1); err != nil {
					return nil, err
				}
			}
			return slices.Insert(c, i, value), nil
		default:
			return nil, fail(NotFound, "cannot add inside a scalar")
		}
	})
}

func remove(doc any, tokens []string) (any, error) {
	if len(tokens) == 0 {
		return nil, fail(Conflict, "cannot remove the whole document")
	}
	return modify(doc, tokens, func(parent any, last string) (any, error) {
		if _, err := step(parent, last); err != nil {
			return nil, err
		}
		switch c := parent.(type) {
		case map[string]any:
			delete(c, last)
			return c, nil
		default:
			i, _ := index(last, len(c.([]any)))
			return slices.Delete(c.([]any), i, i+1), nil
		}
	})
}

func replace(doc any, tokens []string, value any) (any, error) {
	if len(tokens) == 0 {
		return value, nil
	}
	return modify(doc, tokens, func(parent any, last string) (any, error) {
		if _, err := step(parent, last); err != nil {
			return nil, err
		}
		switch c := parent.(type) {
		case map[string]any:
			c[last] = value
			return c, nil
		default:
			i, _ := index(last, len(c.([]any)))
			c.([]any)[i] = value
			return c, nil
		}
	})
}

func depth(v any) int {
	deepest := 0
	switch c := v.(type) {
	case []any:
		for _, item := range c {
			deepest = max(deepest, depth(item))
		}
		return deepest + 1
	case map[string]any:
		for _, item := range c {
			deepest = max(deepest, depth(item))
		}
		return deepest + 1
	default:
		return 0
	}
}
