namespace ringattn::driver {
int main_entry(int argc, char **argv);
}
int main(int argc, char **argv) { return ringattn::driver::main_entry(argc, argv); }
