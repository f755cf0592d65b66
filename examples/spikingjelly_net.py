import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(2, 32, 3, stride=2, padding=1, bias=False)
        self.bn = layer.ThresholdDependentBatchNorm2d(1.0, 1.0, 32)  # alpha, Vth, channels
        self.sn1 = neuron.LIFNode(tau=2.0, v_reset=None)
        self.pool = layer.AdaptiveAvgPool2d((1, 1))
        self.fc = layer.Linear(32, 11)
        self.sn2 = neuron.IFNode()
        functional.set_step_mode(self, "m")  # trained multi-step; imported one step at a time

    def forward(self, x):
        return self.sn2(self.fc(self.pool(self.sn1(self.bn(self.conv(x)))).flatten(-3)))
