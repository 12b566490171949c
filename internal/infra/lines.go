package infra

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// fieldLines maps each field of an environment file to its line, keyed by dotted path as
// environment.FieldError names fields (aws.network.subnets.public[0].cidr). The loader
// has already validated the file; this only reads it again for line numbers, and gives
// none when the file cannot be read (an environment built in memory).
func fieldLines(file string) map[string]int {
	lines := map[string]int{}
	if file == "" {
		return lines
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return lines
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return lines
	}
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		if depth > 32 { // a real file is a few levels deep; aliases could loop
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				lines[p] = k.Line
				walk(v, p, depth+1)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				lines[p] = v.Line
				walk(v, p, depth+1)
			}
		}
	}
	lines[""] = 1
	walk(doc.Content[0], "", 0)
	return lines
}

// lineOf is the line of the field at path or, when it is absent, of its nearest parent.
func lineOf(lines map[string]int, path string) int {
	for {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return lines[""]
		}
		path = path[:i]
	}
}
