func.func @f() {
  func.return
}
// café
