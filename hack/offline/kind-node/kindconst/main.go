// kindconst prints the value of a string constant of a Go source file, with its concatenations
// worked out, e.g. kind's default CNI manifest from pkg/build/nodeimage/const_cni.go:
//
//	kindconst FILE NAME
//
// hack/offline/kind-node-image.sh uses it to write /kind/manifests/*.yaml and to learn the image names those
// manifests reference, exactly as the pinned kind release has them. Standard library only.
package main

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kindconst FILE NAME")
		os.Exit(2)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, os.Args[1], nil, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	conf := types.Config{Importer: importer.Default(), Error: func(error) {}}
	pkg, _ := conf.Check(f.Name.Name, fset, []*ast.File{f}, nil)
	obj, ok := pkg.Scope().Lookup(os.Args[2]).(*types.Const)
	if !ok || obj.Val().Kind() != constant.String {
		fmt.Fprintf(os.Stderr, "%s: no string constant %s\n", os.Args[1], os.Args[2])
		os.Exit(1)
	}
	fmt.Print(constant.StringVal(obj.Val()))
}
