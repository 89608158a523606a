target "web" {
  args = {
    NODE_ENV = "staging"
  }
}
