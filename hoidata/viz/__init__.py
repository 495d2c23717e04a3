"""Pictures: boxes and interactions drawn on images, contact sheets of samples."""
