// TEST DOUBLE, never shipped: a stand-in for VART's Python binding of vart::Runner, so that the tests call
// the runner through the same pybind11 argument conversions as on a KV260.
//
// Written by us, not Xilinx's code, from the facts of Vitis AI 2.5's binding and runtime as the project's notes
// record them with their sources (shared/notes/platform-facts.md section 1: Xilinx/Vitis-AI tag v2.5,
// src/Vitis-AI-Runtime/VART/vart/runner/python/runner_py_module.cpp, vart/dpu-runner/src/imp/dpu_runner_ddr.cpp,
// vart/runner/src/tensor_buffer.cpp; the binding file itself is not in this session's source index, the
// runtime's execute_async/wait pair type is: vart/runner.hpp "std::pair<std::uint32_t, int> execute_async").
// What it keeps of them:
//   execute_async(std::vector<py::buffer>, std::vector<py::buffer>) -> std::pair<uint32_t, int>
//   wait(std::pair<uint32_t, int>) -> int          (a bare int: pybind11's "incompatible function arguments")
//   every buffer is requested writable             (read-only: ValueError "buffer source array is read-only")
//   formats int8, float32 and int16 only           (else a glog CHECK aborts the process)
//   the runtime takes the tensor's shape and the buffer's data pointer as a flat C-contiguous array and
//   checks neither the element count nor the strides: it would read or write other memory.
// What would abort the process or corrupt memory on the board raises WouldAbort here, a distinct error the
// tests assert the package's own calls never meet. The Python subclass (test/vart_emulator.py) supplies the
// tensors and computes the job in run_job(inputs, outputs).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

struct WouldAbort : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Runner {
 public:
  Runner(std::vector<py::ssize_t> input_elements, std::vector<py::ssize_t> output_elements)
      : inputs_(std::move(input_elements)), outputs_(std::move(output_elements)) {}
  virtual ~Runner() = default;

  static void check(std::vector<py::buffer>& buffers, const std::vector<py::ssize_t>& elements, const char* what) {
    if (buffers.size() != elements.size()) {
      throw WouldAbort(std::string(what) + ": " + std::to_string(buffers.size()) + " buffers for " +
                       std::to_string(elements.size()) + " tensors (VART pairs them by index)");
    }
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      py::buffer_info info = buffers[i].request(true);
      if (info.format != "b" && info.format != "f" && info.format != "h") {
        throw WouldAbort(std::string(what) + " " + std::to_string(i) + ": unsupported data type '" + info.format +
                         "' (glog CHECK: the process aborts)");
      }
      if (info.size != elements[i]) {
        throw WouldAbort(std::string(what) + " " + std::to_string(i) + ": " + std::to_string(info.size) +
                         " elements for a tensor of " + std::to_string(elements[i]) +
                         " (VART would read or write other memory)");
      }
      py::ssize_t expected = info.itemsize;
      for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
        if (info.shape[d] > 1 && info.strides[d] != expected) {
          throw WouldAbort(std::string(what) + " " + std::to_string(i) +
                           ": not C-contiguous (VART ignores strides and would read or write other memory)");
        }
        expected *= info.shape[d];
      }
    }
  }

  std::vector<py::ssize_t> inputs_;
  std::vector<py::ssize_t> outputs_;
};

}  // namespace

PYBIND11_MODULE(vart_runner_standin, m) {
  m.doc() = "TEST DOUBLE of VART 2.5's vart.Runner Python binding (argument conversions only).";
  py::register_exception<WouldAbort>(m, "WouldAbort", PyExc_RuntimeError);
  py::class_<Runner>(m, "Runner", py::dynamic_attr())
      .def(py::init<std::vector<py::ssize_t>, std::vector<py::ssize_t>>())
      .def("execute_async",
           [](py::object self, std::vector<py::buffer> inputs, std::vector<py::buffer> outputs) {
             Runner& runner = self.cast<Runner&>();
             Runner::check(inputs, runner.inputs_, "input");
             Runner::check(outputs, runner.outputs_, "output");
             py::object status = self.attr("run_job")(py::cast(inputs), py::cast(outputs));
             return std::pair<uint32_t, int>(1u, status.cast<int>());
           })
      .def("wait", [](Runner&, std::pair<uint32_t, int>) { return 0; });
}
