package environment

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem in an environment file.
type FieldError struct {
	File   string
	Line   int    // 0 when unknown
	Field  string // dotted path such as services.backend.cpu; empty for the whole file
	Reason string
}

// Error reads "file:line: field: reason".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// joinSorted orders errors by line so the output reads top to bottom and is stable.
func joinSorted(errs []*FieldError) error {
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), strings.Compare(a.Field, b.Field))
	})
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

var (
	durationType  = reflect.TypeFor[Duration]()
	yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// decode parses data into e. The document is first walked as a yaml.Node against e's type,
// because yaml.v3's own strict mode reports neither the dotted path nor all problems at once.
// It returns the line of every field present, keyed by dotted path, for validate.
func decode(file string, data []byte, e *Environment) (map[string]int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FieldError{File: file, Reason: "empty file; want a mapping with at least kind"}
		}
		return nil, syntaxError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntaxError(file, err)
		}
		return nil, &FieldError{File: file, Line: extra.Line, Reason: "a second YAML document; want exactly one"}
	}
	root := doc.Content[0]
	if n := aliasedPast(root, maxAliasNodes); n != nil {
		return nil, &FieldError{File: file, Line: n.Line, Reason: fmt.Sprintf("its aliases stand for over %d nodes: write the values out, or alias less", maxAliasNodes)}
	}
	w := walker{file: file, lines: map[string]int{"": root.Line}}
	w.walk(root, reflect.TypeOf(e).Elem(), "")
	if len(w.errs) > 0 {
		return nil, joinSorted(w.errs)
	}
	if err := root.Decode(e); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err) // the walk should have caught it
	}
	return w.lines, nil
}

// maxAliasNodes bounds the nodes that aliases stand for in one file. A few nested anchors
// can stand for billions of nodes ("billion laughs"), and the walk and the decode below
// visit each; a real environment file needs few aliases, if any.
const maxAliasNodes = 10_000

// aliasedPast counts the nodes reached through aliases under n and returns the alias in n's own
// tree at which the count passes limit, or nil. It stops there, so it costs at most the document's
// own nodes plus limit.
func aliasedPast(n *yaml.Node, limit int) *yaml.Node {
	count := 0
	var visit func(n, via *yaml.Node) *yaml.Node
	visit = func(n, via *yaml.Node) *yaml.Node {
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return nil
			}
			if via == nil {
				via = n // the alias in the file's own tree, not one inside an anchor
			}
			n = n.Alias
		}
		if via != nil {
			if count++; count > limit {
				return via
			}
		}
		for _, c := range n.Content {
			if at := visit(c, via); at != nil {
				return at
			}
		}
		return nil
	}
	return visit(n, nil)
}

func syntaxError(file string, err error) error {
	fe := &FieldError{File: file, Reason: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLineError.FindStringSubmatch(err.Error()); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		fe.Reason = m[2]
	}
	return fe
}

type walker struct {
	file  string
	lines map[string]int
	errs  []*FieldError
}

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{File: w.file, Line: n.Line, Field: path, Reason: fmt.Sprintf(format, args...)})
}

// walk checks n against t: known keys, no duplicates, and the right node kind for every field.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.ShortTag() == "!!null" {
		return // reads as absent; validate reports it where it is required
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		if n.ShortTag() == "!!str" {
			if _, err := time.ParseDuration(n.Value); err == nil {
				return
			}
		}
		w.fail(n, path, "expected a duration such as 90s or 24h, got %s", describe(n))
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := yamlFields(t)
		w.mapping(n, path, func(key string, k, v *yaml.Node) {
			ft, ok := fields[key]
			if !ok {
				w.fail(k, join(path, key), "unknown key; known keys: %s", strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
				return
			}
			w.walk(v, ft, join(path, key))
		})
	case reflect.Map:
		w.mapping(n, path, func(key string, _, v *yaml.Node) { w.walk(v, t.Elem(), join(path, key)) })
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = item.Line
			w.walk(item, t.Elem(), p)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "expected a string, got %s", describe(n))
		}
	case reflect.Int:
		if n.ShortTag() != "!!int" {
			w.fail(n, path, "expected an integer, got %s", describe(n))
		}
	case reflect.Bool:
		if n.ShortTag() != "!!bool" {
			w.fail(n, path, "expected true or false, got %s", describe(n))
		}
	default:
		panic(fmt.Sprintf("environment: no YAML check for %s", t)) // a new field type needs a case
	}
}

// mapping calls each for every key of n, after recording its line; null values are left
// unrecorded so that they read as absent.
func (w *walker) mapping(n *yaml.Node, path string, each func(key string, k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			w.fail(k, p, "duplicate key; first at line %d", first)
			continue
		}
		seen[k.Value] = k.Line
		if v.ShortTag() != "!!null" {
			w.lines[p] = k.Line
		}
		each(k.Value, k, v)
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return n.Value
	}
	return fmt.Sprintf("%q", n.Value)
}

// yamlFields maps the YAML keys of struct t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		if name := yamlName(f); name != "" {
			fields[name] = f.Type
		}
	}
	return fields
}

// yamlName is f's YAML key, or "" when f is not read from YAML.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if !f.IsExported() || name == "-" || name == "" {
		return ""
	}
	return name
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
