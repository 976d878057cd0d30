package translate

import (
	"fmt"

	"github.com/statesync/statesync/go/canonical"
)

// apply runs ops on a copy of doc; the input is never modified.
func apply(ops []Op, doc any, fromVersion, toVersion int) (any, error) {
	out := canonical.Clone(doc)
	for i, op := range ops {
		var err error
		var field string
		switch op.Name {
		case "rename":
			rename(out, op)
		case "add":
			add(out, op)
		case "remove":
			remove(out, op)
		case "move":
			field = op.To
			out, err = move(out, op)
		case "convert":
			field = op.Path
			err = convert(out, op)
		}
		if err != nil {
			return nil, &Error{OpIndex: i, Field: field, Reason: err.Error(), FromVersion: fromVersion, ToVersion: toVersion}
		}
	}
	return out, nil
}

// parent resolves the object holding a path's last token (§3).
func parent(doc any, toks []string) (map[string]any, bool) {
	cur := doc
	for _, t := range toks[:len(toks)-1] {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[t]; !ok {
			return nil, false
		}
	}
	obj, ok := cur.(map[string]any)
	return obj, ok
}

func mustTokens(p string) []string {
	t, _ := tokens(p) // checked when the translation was parsed
	return t
}

func rename(doc any, op Op) {
	from, to := mustTokens(op.From), mustTokens(op.To)
	obj, ok := parent(doc, from)
	if !ok {
		return
	}
	if v, present := obj[from[len(from)-1]]; present {
		delete(obj, from[len(from)-1])
		obj[to[len(to)-1]] = v
	}
}

func add(doc any, op Op) {
	toks := mustTokens(op.Path)
	if obj, ok := parent(doc, toks); ok {
		if _, present := obj[toks[len(toks)-1]]; !present {
			obj[toks[len(toks)-1]] = canonical.Clone(op.Default)
		}
	}
}

func remove(doc any, op Op) {
	toks := mustTokens(op.Path)
	if obj, ok := parent(doc, toks); ok {
		delete(obj, toks[len(toks)-1])
	}
}

func move(doc any, op Op) (any, error) {
	from, to := mustTokens(op.From), mustTokens(op.To)
	src, ok := parent(doc, from)
	if !ok {
		return doc, nil
	}
	v, present := src[from[len(from)-1]]
	if !present {
		return doc, nil
	}
	// 1. Every value on the target's path must be an object.
	cur := doc
	for _, t := range to[:len(to)-1] {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s goes through a value that is not an object", op.To)
		}
		next, exists := obj[t]
		if !exists {
			cur = map[string]any{}
			break
		}
		cur = next
	}
	if _, ok := cur.(map[string]any); !ok {
		return nil, fmt.Errorf("%s goes through a value that is not an object", op.To)
	}
	// 2. Take the value; 3. prune ancestors left empty, innermost first.
	delete(src, from[len(from)-1])
	for depth := len(from) - 1; depth >= 1; depth-- {
		holder, _ := parent(doc, from[:depth])
		if obj, _ := holder[from[depth-1]].(map[string]any); len(obj) > 0 {
			break
		}
		delete(holder, from[depth-1])
	}
	// 4. Walk to the target creating missing objects, and set it.
	obj := doc.(map[string]any)
	for _, t := range to[:len(to)-1] {
		next, exists := obj[t].(map[string]any)
		if !exists {
			next = map[string]any{}
			obj[t] = next
		}
		obj = next
	}
	obj[to[len(to)-1]] = v
	return doc, nil
}

func convert(doc any, op Op) error {
	toks := mustTokens(op.Path)
	obj, ok := parent(doc, toks)
	if !ok {
		return nil
	}
	v, present := obj[toks[len(toks)-1]]
	if !present {
		return nil
	}
	out, err := converters[op.Converter].fn(v)
	if err != nil {
		return fmt.Errorf("%s: %w", op.Converter, err)
	}
	obj[toks[len(toks)-1]] = out
	return nil
}
