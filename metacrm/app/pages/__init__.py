"""The app's pages, one module per kind of page; each turns a request into a `View`."""
