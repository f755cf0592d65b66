import sinabs.layers as sl
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(
            nn.Conv2d(2, 16, 5, 2, 2, bias=False),
            sl.IAFSqueeze(batch_size=1),
            sl.SumPool2d(2),
            nn.Conv2d(16, 32, 3, 1, 1, bias=False),
            sl.IAFSqueeze(batch_size=1),
            sl.SumPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, 10, bias=False),
            sl.IAFSqueeze(batch_size=1),
        )

    def forward(self, x):
        return self.seq(x)
