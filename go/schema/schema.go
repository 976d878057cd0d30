// Package schema validates values against a namespace's JSON Schema (draft
// 2020-12, `format` asserted), reporting every violation as (JSON Pointer into
// the value, failed keyword), as the controller does at write time and the
// worker at apply time (docs/contracts.md, conformance/validate).
package schema

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// Violation is one failed keyword at one place in the value.
type Violation struct {
	Path    string // JSON Pointer into the value ("" is the value itself)
	Keyword string // "false" for a false subschema
	Message string
}

// Schema is a compiled schema.
type Schema struct {
	compiled *jsonschema.Schema
}

const resource = "statesync:schema.json"

// Compile compiles a parsed schema document (values as package canonical
// parses them). A document without $schema is read as draft 2020-12.
func Compile(doc any) (*Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(resource, doc); err != nil {
		return nil, fmt.Errorf("the schema: %w", err)
	}
	compiled, err := c.Compile(resource)
	if err != nil {
		return nil, fmt.Errorf("the schema does not compile: %w", err)
	}
	return &Schema{compiled: compiled}, nil
}

// Validate returns every violation of value, sorted by path then keyword;
// none means the value is valid.
func (s *Schema) Validate(value any) []Violation {
	err := s.compiled.Validate(value)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return []Violation{{Keyword: "invalid", Message: err.Error()}}
	}
	var out []Violation
	collect(verr, &out)
	slices.SortStableFunc(out, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Keyword, b.Keyword))
	})
	return out
}

// collect walks to the leaf errors: the keywords that failed.
func collect(e *jsonschema.ValidationError, out *[]Violation) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			collect(c, out)
		}
		return
	}
	path := pointer(e.InstanceLocation)
	message := e.Error()
	switch k := e.ErrorKind.(type) {
	case *kind.FalseSchema:
		*out = append(*out, Violation{path, "false", message})
	case *kind.Required:
		// One violation per missing member, as the reference reports them.
		for range k.Missing {
			*out = append(*out, Violation{path, "required", message})
		}
	default:
		keywords := e.ErrorKind.KeywordPath()
		keyword := "invalid"
		if len(keywords) > 0 {
			keyword = keywords[len(keywords)-1]
		}
		*out = append(*out, Violation{path, keyword, message})
	}
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}
