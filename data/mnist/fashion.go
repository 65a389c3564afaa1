package mnist

import (
	"fmt"
	"os"
)

// FashionDir is where Debian's dataset-fashion-mnist package installs Fashion-MNIST (the same four
// idx .gz files and names as MNIST: 28x28 grey images of 10 clothing classes).
const FashionDir = "/usr/share/datasets/fashion-mnist"

// EnvFashionDir names the environment variable that overrides FashionDir.
const EnvFashionDir = "QATGO_FASHION_DIR"

// FashionLabels name the ten Fashion-MNIST classes in label order.
var FashionLabels = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// LocateFashion returns the folder holding the Fashion-MNIST idx files: $QATGO_FASHION_DIR, else
// FashionDir (apt-get install dataset-fashion-mnist).
func LocateFashion() (string, error) {
	d := os.Getenv(EnvFashionDir)
	if d == "" {
		d = FashionDir
	}
	if err := checkDir(d); err != nil {
		return "", fmt.Errorf("mnist: Fashion-MNIST not found in %s (apt-get install dataset-fashion-mnist, or set %s): %w", d, EnvFashionDir, err)
	}
	return d, nil
}

// DataDir resolves a dataset name as the command line takes it: "mnist" (Locate), "fashion"
// (LocateFashion) or a folder holding the four idx files (gzipped or not).
func DataDir(name string) (string, error) {
	switch name {
	case "mnist":
		return Locate()
	case "fashion", "fashion-mnist":
		return LocateFashion()
	}
	if err := checkDir(name); err != nil {
		return "", fmt.Errorf("mnist: %q is neither mnist, fashion nor a folder of idx files: %w", name, err)
	}
	return name, nil
}
