package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProblemTypesAreDocumented: every problem type the edge can answer
// (each newProblem call's name) is listed in docs/api.md, where problem
// type URLs send a reader.
func TestProblemTypesAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	names := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "newProblem" {
				return true
			}
			lit, ok := call.Args[1].(*ast.BasicLit)
			if !ok {
				t.Errorf("%s: newProblem with a name that is not a literal", fset.Position(call.Pos()))
				return true
			}
			name, _ := strconv.Unquote(lit.Value)
			names[name] = true
			return true
		})
	}
	if len(names) < 10 {
		t.Fatalf("found only %d problem types: %v", len(names), names)
	}
	for name := range names {
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("problem type %q is not in docs/api.md's table", name)
		}
	}
}
